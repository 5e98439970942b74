"""`saescope contrast`: the latents that tell two sets of texts apart.

"Do I Know This Entity?" (Ferrando et al.) found known- and unknown-entity latents by
their separation score: the fraction of positive texts on which a latent fires minus the fraction
of negative ones, P(a > 0 | positive) − P(a > 0 | negative), read at the entity's last token.
Here, at the chosen positions of every text (its last token, all its tokens but BOS, or the last
token of each occurrence of a substring), for every latent:

- separation = P(a > 0 | positive) − P(a > 0 | negative);
- mean difference = mean a over positive positions − over negative ones (zeros included);
- Welch's t = mean difference / sqrt(var₊/n₊ + var₋/n₋).

Latents that fire on more than `max_density` of generic text (latent index, eval output, or
held-out tokens: `saescope.steer.frequencies`) are left out, as Ferrando et al. do: they fire everywhere and
separate nothing specific. The best `top` latents of each direction are listed, each with its
explanation when the index has one.

This module knows nothing about generation or steering.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..bound import BoundSAE, bind_sae
from ..config import model_of
from ..config.steer import ContrastConfig
from ..data import ModelInput, spans_by_decoding
from ..errors import SaescopeError
from ..index import read_explanations
from ..index.locate import index_of_sae
from ..positions import iter_positions
from ..tokens import encode
from .frequencies import FiringStats, firing_stats
from .preflight import sae_config, tokenizer_for
from .texts import Text, read_texts

log = logging.getLogger(__name__)


class LatentContrast(NamedTuple):
    """How one latent differs between the two sets."""

    latent: int
    """The latent id."""
    separation: float
    """P(a > 0 | positive) − P(a > 0 | negative)."""
    fires_positive: float
    """P(a > 0 | positive)."""
    fires_negative: float
    """P(a > 0 | negative)."""
    mean_difference: float
    """Mean activation over positive positions − over negative ones."""
    t: float
    """Welch's t-statistic of that difference (0 when neither side varies)."""
    density: float
    """Its firing frequency on generic text."""
    explanation: str | None
    """From the latent index, when it has one."""


class ContrastResult(NamedTuple):
    """What `saescope contrast` found."""

    positive_positions: int
    """Positions read from the positive texts."""
    negative_positions: int
    """Positions read from the negative texts."""
    skipped: int
    """Texts left out because the substring does not occur in them."""
    positions: str
    """Which positions: last, all or substring."""
    max_density: float
    """Latents denser than this on generic text were left out."""
    excluded: int
    """How many were."""
    density_source: str
    """Where the generic densities come from."""
    positive: list[LatentContrast]
    """Latents firing more on the positive texts, best first."""
    negative: list[LatentContrast]
    """Latents firing more on the negative texts, best first."""

    def to_json(self) -> dict[str, Any]:
        out = self._asdict()
        out["positive"] = [c._asdict() for c in self.positive]
        out["negative"] = [c._asdict() for c in self.negative]
        return out

    def render(self) -> str:
        lines = [
            f"{self.positive_positions} positive and {self.negative_positions} negative positions "
            f"({self.positions}); {self.excluded} latents denser than {self.max_density:g} left out "
            f"(densities: {self.density_source})"
            + (f"; {self.skipped} texts without the substring skipped" if self.skipped else ""),
        ]
        for name, rows in (("positive", self.positive), ("negative", self.negative)):
            lines += ["", f"latents firing more on the {name} texts:", _header()]
            lines += [_row(c) for c in rows] or ["  (none)"]
        return "\n".join(lines)


def _header() -> str:
    return (
        f"{'latent':>7} {'sep':>7} {'P(+)':>6} {'P(-)':>6} {'Δmean':>8} {'t':>7} {'density':>8}  explanation"
    )


def _row(c: LatentContrast) -> str:
    return (
        f"{c.latent:>7} {c.separation:>+7.3f} {c.fires_positive:>6.3f} {c.fires_negative:>6.3f} "
        f"{c.mean_difference:>+8.3f} {c.t:>+7.2f} {c.density:>8.5f}  {c.explanation or ''}"
    )


@dataclass
class Tally:
    """Running per-latent sums over the positions of one set."""

    d_sae: int
    count: int = 0
    fired: Tensor = field(init=False)
    total: Tensor = field(init=False)
    squares: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.fired, self.total, self.squares = (
            torch.zeros(self.d_sae, dtype=torch.float64) for _ in range(3)
        )

    def add(self, acts: Tensor, idx: Tensor) -> None:
        """Add [n, K] sparse codes of n positions."""
        self.count += acts.shape[0]
        acts, idx = acts.double().flatten().cpu(), idx.flatten().cpu()
        on = acts > 0
        self.fired.index_add_(0, idx[on], torch.ones_like(acts[on]))
        self.total.index_add_(0, idx[on], acts[on])
        self.squares.index_add_(0, idx[on], acts[on] ** 2)

    def rate(self) -> Tensor:
        return self.fired / max(self.count, 1)

    def mean(self) -> Tensor:
        return self.total / max(self.count, 1)

    def variance(self) -> Tensor:
        """Unbiased variance per latent (0 with fewer than two positions)."""
        if self.count < 2:
            return torch.zeros(self.d_sae, dtype=torch.float64)
        return ((self.squares - self.count * self.mean() ** 2) / (self.count - 1)).clamp_min(0)


def text_positions(ids: list[int], text: Text, mode: str, substring: str | None, tokenizer: Any) -> list[int]:
    """The positions of one tokenized text to compare ([] when its substring does not occur)."""
    if mode == "last":
        return [len(ids) - 1]
    if mode == "all":
        first = 1 if len(ids) > 1 and ids[0] == tokenizer.bos_token_id else 0
        return list(range(first, len(ids)))
    wanted = text.substring or substring
    if not wanted:
        return []
    return sorted({end - 1 for _, end in spans_by_decoding(ids, wanted, tokenizer)})


def model_inputs(
    tokenizer: Any, texts: Sequence[Text], mode: str, substring: str | None, chat: bool, prepend_bos: bool
) -> tuple[list[ModelInput], int]:
    """(the texts as model inputs with the positions to read, how many were skipped)."""
    inputs, skipped = [], 0
    for number, text in enumerate(texts):
        ids = encode(tokenizer, text.text, chat, prepend_bos)
        positions = text_positions(ids, text, mode, substring, tokenizer)
        if not positions:
            skipped += 1
            continue
        inputs.append(ModelInput(number, ids, positions, text.text, f"text {number}"))
    return inputs, skipped


@torch.inference_mode()
def tally(bound: BoundSAE, inputs: Sequence[ModelInput], batch_size: int) -> Tally:
    """Per-latent sums over the chosen positions of `inputs`."""
    sums = Tally(bound.sae.d_sae)
    for pb in iter_positions(bound.loaded_model, [bound.hookpoint], inputs, batch_size):
        acts, idx, _ = bound.sae.encode(pb.activations[bound.hookpoint.name].float())
        sums.add(acts, idx)
    return sums


def compare(
    pos: Tally, neg: Tally, density: Tensor, max_density: float, explanations: dict[int, str]
) -> list[LatentContrast]:
    """Every latent not denser than `max_density`, in latent order."""
    separation = pos.rate() - neg.rate()
    difference = pos.mean() - neg.mean()
    se = (pos.variance() / max(pos.count, 1) + neg.variance() / max(neg.count, 1)).sqrt()
    t = torch.where(se > 0, difference / se.clamp_min(1e-300), torch.zeros_like(se))
    keep = (density <= max_density).nonzero()[:, 0].tolist()
    return [
        LatentContrast(
            latent=i,
            separation=float(separation[i]),
            fires_positive=float(pos.rate()[i]),
            fires_negative=float(neg.rate()[i]),
            mean_difference=float(difference[i]),
            t=float(t[i]),
            density=float(density[i]),
            explanation=explanations.get(i),
        )
        for i in keep
        if pos.fired[i] > 0 or neg.fired[i] > 0
    ]


def contrast_inputs(
    tokenizer: Any,
    positive: Sequence[Text | str],
    negative: Sequence[Text | str],
    positions: str = "last",
    substring: str | None = None,
    chat: bool = False,
    prepend_bos: bool = True,
) -> tuple[list[list[ModelInput]], int]:
    """([positive inputs, negative inputs], texts skipped): every text tokenized with the positions
    to compare; a side with no position at all is an error (needs only the tokenizer)."""
    if positions not in ("last", "all", "substring"):
        raise SaescopeError(f"positions must be last, all or substring, got {positions!r}")
    sides, skipped = [], 0
    for name, texts in (("positive", positive), ("negative", negative)):
        items = [t if isinstance(t, Text) else Text(t) for t in texts]
        inputs, missed = model_inputs(tokenizer, items, positions, substring, chat, prepend_bos)
        if not inputs:
            raise SaescopeError(f"no {name} text has a position to compare (substring absent everywhere?)")
        skipped += missed
        sides.append(inputs)
    return sides, skipped


def contrast_latents(
    bound: BoundSAE,
    positive: Sequence[Text | str],
    negative: Sequence[Text | str],
    positions: str = "last",
    substring: str | None = None,
    stats: FiringStats | None = None,
    max_density: float = 0.05,
    top: int = 20,
    chat: bool = False,
    prepend_bos: bool = True,
    batch_size: int = 16,
    explanations: dict[int, str] | None = None,
) -> ContrastResult:
    """Latents separating `positive` from `negative` texts (see the module docstring)."""
    tokenizer = bound.loaded_model.tokenizer
    inputs, skipped = contrast_inputs(tokenizer, positive, negative, positions, substring, chat, prepend_bos)
    stats = stats or firing_stats(bound, need_maximum=False)
    sides = [tally(bound, side, batch_size) for side in inputs]
    if skipped:
        log.warning("%d texts do not contain their substring; skipped", skipped)
    density = stats.frequency.double()
    rows = compare(sides[0], sides[1], density, max_density, explanations or {})
    up = sorted((r for r in rows if r.separation > 0), key=lambda r: (-r.separation, -r.t))[:top]
    down = sorted((r for r in rows if r.separation < 0), key=lambda r: (r.separation, r.t))[:top]
    return ContrastResult(
        positive_positions=sides[0].count,
        negative_positions=sides[1].count,
        skipped=skipped,
        positions=positions,
        max_density=max_density,
        excluded=int((density > max_density).sum()),
        density_source=stats.source,
        positive=up,
        negative=down,
    )


def contrast(cfg: ContrastConfig) -> ContrastResult:
    """`saescope contrast` (see the module docstring)."""
    positive = read_texts(cfg.positive, cfg.text_field, cfg.substring_field)
    negative = read_texts(cfg.negative, cfg.text_field, cfg.substring_field)
    tokenizer = tokenizer_for(
        sae_config(cfg.sae), cfg.sae, cfg, cfg.model
    )  # refuse bad input before the model loads
    contrast_inputs(tokenizer, positive, negative, cfg.positions, cfg.substring, cfg.chat, cfg.prepend_bos)
    bound = bind_sae(cfg.sae, cfg.model or None, force=cfg.force, settings=model_of(cfg))
    stats = firing_stats(bound, cfg.index, cfg.stats_tokens, need_maximum=False)
    found = index_of_sae(bound.sae.file_tensors(), bound.path, cfg.index)
    explained = read_explanations(found) if found is not None else {}
    return contrast_latents(
        bound,
        positive,
        negative,
        cfg.positions,
        cfg.substring,
        stats,
        cfg.max_density,
        cfg.top,
        cfg.chat,
        cfg.prepend_bos,
        cfg.batch_size,
        explained,
    )


__all__ = ["ContrastResult", "LatentContrast", "Tally", "contrast", "contrast_inputs", "contrast_latents"]
