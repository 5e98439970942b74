"""`saescope effects`: what each active latent of a text does to the tokens after it.

The text's tokens s_0 … s_n (with `--target`, the target's first token is appended as s_n) are
run through the model, and the prediction of s_n at position n−1 is the one explained; its
log-probability is M. For every latent i active at a position p (BOS excluded, activation a > 0):

- ablation effect (Towards Monosemanticity's underlines): the forward pass rerun with that latent
  removed at that position only, x_p → x_p − a·d_i (the SAE's error kept, so nothing else
  changes); for every later prediction q ≥ p, log p(s_{q+1}) clean minus ablated. Its value at
  q = n−1 is the effect on M;
- attribution: a · (d_i · ∂M/∂x_p) — the first-order estimate of the same effect on M, from ONE
  backward pass (the SAE spliced in with its error term leaves the forward pass unchanged, so the
  gradient with respect to the latent is d_i · ∂M/∂x_p).

For a transcoder, x is what it reads (`mlp_in:L`, where the latents come from) and the ablation and
the gradient are at its output (`mlp_out:L`, where d_i lives; `BoundSAE.writes`).

Their Pearson correlation over all active pairs is reported (Scaling Monosemanticity found 0.8
between attribution and ablation), and the pairs with the largest effect on M are listed.

The ablations run batched: pairs sorted by position; each batch runs the tokens before its
earliest position once, unedited (nothing before p changes), into a KV cache replicated over its
rows, which then compute only the columns that can change — 2.5× faster than recomputing the
whole text per row (benchmarks/steer.py).

This module knows nothing about generation or steering controls.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..bound import BoundSAE, bind_sae
from ..config import model_of
from ..config.steer import EffectsConfig
from ..errors import SaescopeError
from ..index import read_explanations
from ..index.locate import index_of_sae
from ..stats import pearson
from ..tokens import decode_each, encode
from .generate import cache_argument, new_cache
from .preflight import sae_config, tokenizer_for

log = logging.getLogger(__name__)

LOGITS_BUDGET = 1 << 26
"""Logit entries (batch × columns × vocabulary) one ablation pass may hold (256 MiB in float32)."""


UNITS = (
    "ablation: log p(target) with the latent minus with it ablated at its position, in nats "
    "(positive: the latent raises the target's probability); attribution: its first-order estimate, "
    "same units and sign"
)
"""What the ablation and attribution columns hold."""
CORRELATION_NOTE = "not measured (fewer than two pairs, or no variation)"


class PairEffect(NamedTuple):
    """One latent at one position."""

    position: int
    """Token position of the latent."""
    latent: int
    """The latent id."""
    activation: float
    """Its activation there."""
    ablation: float
    """M clean − M with the latent ablated there (how much it raises the target's log-prob)."""
    attribution: float
    """a · d_i · ∂M/∂x_p, the first-order estimate of `ablation`."""
    later: list[float]
    """For each prediction q = position … n−1: log p(s_{q+1}) clean − ablated."""


class EffectsResult(NamedTuple):
    """What `saescope effects` found."""

    tokens: list[str]
    """The tokens s_0 … s_n (the last is the target)."""
    target: str
    """The explained token s_n."""
    target_logprob: float
    """M: its log-probability at position n−1."""
    pairs: list[PairEffect]
    """Every active (position, latent), by position then latent."""
    correlation: float | None
    """Pearson correlation of ablation and attribution over the pairs (None with fewer than two,
    or no variation)."""
    top: list[PairEffect]
    """The pairs with the largest |ablation| effect on M."""
    explanations: dict[int, str]
    """Latent → explanation, for the latents in `top` the index explains."""
    ablation_seconds: float
    """Time of all ablation passes."""
    attribution_seconds: float
    """Time of the forward and backward pass that give every attribution."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "target": self.target,
            "target_logprob": self.target_logprob,
            "correlation": self.correlation,
            "units": UNITS,
            "top": [self._pair_json(p) for p in self.top],
            "pairs": [self._pair_json(p) for p in self.pairs],
            "seconds": {"ablation": self.ablation_seconds, "attribution": self.attribution_seconds},
        }

    def _pair_json(self, pair: PairEffect) -> dict[str, Any]:
        out = {**pair._asdict(), "token": self.tokens[pair.position]}
        if pair.latent in self.explanations:
            out["explanation"] = self.explanations[pair.latent]
        return out

    def render(self) -> str:
        corr = CORRELATION_NOTE if self.correlation is None else f"{self.correlation:.3f}"
        lines = [
            f"target {self.target!r} after {len(self.tokens) - 1} tokens: log p = {self.target_logprob:.3f}",
            f"{len(self.pairs)} active (position, latent) pairs; correlation of ablation and attribution: "
            f"{corr}",
            f"ablation {self.ablation_seconds:.2f} s, attribution {self.attribution_seconds:.2f} s",
            UNITS,
            "",
            f"{'pos':>4} {'token':<14} {'latent':>7} {'act':>8} {'ablation':>9} {'attrib':>9}  explanation",
        ]
        for p in self.top:
            token = repr(self.tokens[p.position])[:14]
            lines.append(
                f"{p.position:>4} {token:<14} {p.latent:>7} {p.activation:>8.3f} {p.ablation:>+9.4f} "
                f"{p.attribution:>+9.4f}  {self.explanations.get(p.latent, '')}"
            )
        return "\n".join(lines)


class CleanPass(NamedTuple):
    """The unedited text: activations, next-token log-probs and the gradient of M."""

    activations: Tensor
    """[n, d_in] at the hookpoint the SAE reads (float32)."""
    next_logprobs: Tensor
    """[n] log p(s_{q+1}) at each position q."""
    gradient: Tensor
    """[n, d_out] ∂M/∂y (float32), y the activation where the decoder writes (x for an SAE)."""


def effect_tokens(
    tokenizer: Any, text: str, target: str | None, prepend_bos: bool, max_tokens: int | None = None
) -> list[int]:
    """s_0 … s_n: the text's tokens, plus the target's first token when given (refused beyond
    `max_tokens`; needs only the tokenizer, so the command checks it before the model loads)."""
    ids = encode(tokenizer, text, prepend_bos=prepend_bos)
    if target is not None:
        extra = tokenizer(target, add_special_tokens=False)["input_ids"]
        if not extra:
            raise SaescopeError(f"target {target!r} has no tokens")
        ids.append(int(extra[0]))
    if len(ids) < 2:
        raise SaescopeError("the text is one token long: there is no next token to explain")
    if max_tokens is not None and len(ids) > max_tokens:
        raise SaescopeError(f"the text has {len(ids)} tokens, more than --max-tokens {max_tokens}")
    return ids


def clean_pass(bound: BoundSAE, seq: Tensor) -> CleanPass:
    """Forward and backward over `seq` [n+1] (see `CleanPass`)."""
    model = bound.loaded_model.model
    read: list[Tensor] = []
    held: list[Tensor] = []

    def leaf(seen: Tensor, act: Tensor) -> Tensor:
        # The gradient is wanted from where the decoder writes on only: a detached leaf stops it there.
        read.append(seen.detach().float())
        held.append(act.detach().float().requires_grad_(True))
        return held[-1].to(act.dtype)

    ids = seq[None, :-1]
    with torch.enable_grad(), bound.rewrite(leaf):
        logprobs = model(input_ids=ids, use_cache=False).logits[0].float().log_softmax(-1)
        nexts = logprobs.gather(-1, seq[1:, None]).squeeze(-1)
        nexts[-1].backward()
    y = held[0]
    assert y.grad is not None
    return CleanPass(read[0][0], nexts.detach(), y.grad[0])


def active_pairs(bound: BoundSAE, x: Tensor, skip_first: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(positions, latents, activations) of every active latent, by position then latent."""
    with torch.no_grad():
        acts, idx, _ = bound.sae.encode(x)
    on = acts > 0
    if skip_first:
        on[0] = False
    positions = on.nonzero()[:, 0]
    latents, values = idx[on], acts[on]
    order = torch.argsort(positions * bound.sae.d_sae + latents)
    return positions[order], latents[order], values[order]


def _ablated_logprobs(
    bound: BoundSAE, seq: Tensor, positions: Tensor, latents: Tensor, values: Tensor
) -> Tensor:
    """[b, n − p0] log p(s_{q+1}) for q ≥ p0 = min(positions), each row with one pair ablated."""
    model, w_dec = bound.loaded_model.model, bound.sae.W_dec
    rows, start = len(positions), int(positions.min())
    cache = None
    if start > 0:
        cache = new_cache(model)
        model(input_ids=seq[None, :start], use_cache=True, **cache_argument(model, cache))
        cache.batch_repeat_interleave(rows)
    change = -(values[:, None] * w_dec[latents])

    def ablate(_read: Tensor, act: Tensor) -> Tensor:
        out = act.clone()
        r = torch.arange(rows, device=act.device)
        out[r, positions - start] += change.to(act.dtype)
        return out

    ids = seq[None, start:-1].expand(rows, -1)
    with bound.rewrite(ablate):
        out = model(input_ids=ids, use_cache=cache is not None, **cache_argument(model, cache))
    logprobs = out.logits.float().log_softmax(-1)
    targets = seq[start + 1 :].expand(rows, -1)
    return logprobs.gather(-1, targets[..., None]).squeeze(-1)


def _chunks(positions: Tensor, n: int, vocab: int, batch_size: int) -> list[slice]:
    """Consecutive slices of the pairs (sorted by position), each within `batch_size` rows and the
    logits budget."""
    out, first, total = [], 0, len(positions)
    while first < total:
        width = n - int(positions[first])
        rows = max(1, min(batch_size, LOGITS_BUDGET // max(width * vocab, 1)))
        out.append(slice(first, min(first + rows, total)))
        first += rows
    return out


@torch.no_grad()
def ablation_effects(
    bound: BoundSAE, seq: Tensor, clean: CleanPass, pairs: tuple[Tensor, Tensor, Tensor], batch_size: int
) -> list[list[float]]:
    """For each pair, log p(s_{q+1}) clean − ablated for q = its position … n−1."""
    positions, latents, values = pairs
    n = seq.numel() - 1
    vocab = bound.loaded_model.model.get_output_embeddings().weight.shape[0]
    later: list[list[float]] = []
    chunks = _chunks(positions, n, vocab, batch_size)
    for part in tqdm(chunks, desc="effects: ablations", unit="batch", dynamic_ncols=True):
        p, i, a = positions[part], latents[part], values[part]
        start = int(p.min())
        diff = clean.next_logprobs[start:][None, :] - _ablated_logprobs(bound, seq, p, i, a)
        for row, pos in enumerate(p.tolist()):
            later.append(diff[row, pos - start :].tolist())
    return later


def latent_effects(
    bound: BoundSAE,
    text: str,
    target: str | None = None,
    top: int = 15,
    batch_size: int = 32,
    prepend_bos: bool = True,
    max_tokens: int = 256,
    explanations: dict[int, str] | None = None,
) -> EffectsResult:
    """Ablation effects, attributions and their correlation on `text` (see the module docstring)."""
    tokenizer = bound.loaded_model.tokenizer
    ids = effect_tokens(tokenizer, text, target, prepend_bos, max_tokens)
    seq = torch.tensor(ids, device=bound.loaded_model.device)
    started = time.perf_counter()
    clean = clean_pass(bound, seq)
    pairs = active_pairs(bound, clean.activations, skip_first=ids[0] == tokenizer.bos_token_id)
    positions, latents, values = pairs
    w = bound.sae.W_dec.detach()[latents].float()
    attribution = values * (w * clean.gradient[positions]).sum(-1)
    attribution_seconds = time.perf_counter() - started
    started = time.perf_counter()
    later = ablation_effects(bound, seq, clean, pairs, batch_size) if len(positions) else []
    ablation_seconds = time.perf_counter() - started
    records = [
        PairEffect(int(p), int(i), float(a), effect[-1], float(attr), effect)
        for p, i, a, attr, effect in zip(
            positions.tolist(), latents.tolist(), values.tolist(), attribution.tolist(), later
        )
    ]
    ranked = sorted(records, key=lambda r: -abs(r.ablation))[:top]
    wanted = explanations or {}
    shown = {r.latent: wanted[r.latent] for r in ranked if r.latent in wanted}
    return EffectsResult(
        tokens=decode_each(tokenizer, ids),
        target=decode_each(tokenizer, [ids[-1]])[0],
        target_logprob=float(clean.next_logprobs[-1]),
        pairs=records,
        correlation=pearson([r.ablation for r in records], [r.attribution for r in records]),
        top=ranked,
        explanations=shown,
        ablation_seconds=ablation_seconds,
        attribution_seconds=attribution_seconds,
    )


def effects(cfg: EffectsConfig) -> EffectsResult:
    """`saescope effects` (see the module docstring)."""
    tokenizer = tokenizer_for(
        sae_config(cfg.sae), cfg.sae, cfg, cfg.model
    )  # refuse bad input before the model loads
    effect_tokens(tokenizer, cfg.text, cfg.target, cfg.prepend_bos, cfg.max_tokens)
    bound = bind_sae(cfg.sae, cfg.model or None, force=cfg.force, settings=model_of(cfg))
    found = index_of_sae(bound.sae.file_tensors(), bound.path, cfg.index)
    explained = read_explanations(found) if found is not None else {}
    result = latent_effects(
        bound, cfg.text, cfg.target, cfg.top, cfg.batch_size, cfg.prepend_bos, cfg.max_tokens, explained
    )
    if result.correlation is not None and math.isfinite(result.correlation):
        log.info(
            "correlation of ablation and attribution over %d pairs: %.3f",
            len(result.pairs),
            result.correlation,
        )
    return result


__all__ = [
    "EffectsResult",
    "PairEffect",
    "ablation_effects",
    "clean_pass",
    "effects",
    "latent_effects",
]
