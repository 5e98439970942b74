"""The numbers a steering run reports, each saying which positions or tokens it covers.

For every variant (the steered one and each control) against the unsteered model, on the same
prompts:

- the next-token effect: each prompt followed by its UNSTEERED completion is run teacher-forced
  through the unsteered model and through the variant's edit, so both read identical contexts; at
  the positions the edit changes — those its place covers, and for `scale`, `ablate` or a
  `conditional` edit only where the latent is active (BOS and padding never) — the mean of
  log p_variant(targets) − log p_unsteered(targets), where log p(targets) is the log-probability
  that the next token is any target token;
- KL(P_unsteered ‖ P_variant) of the next-token distributions at the same positions (the
  direction `saescope eval` uses for a spliced SAE);
- along the completion: the mean log p(targets) over a completion's generated tokens, each read
  from the distribution that chose it, the variant's own completion minus the unsteered one's,
  averaged over prompts;
- fluency (`saescope.steer.sweep`): the perplexity of a completion under the unsteered model, and
  the fraction of its token n-grams (`NGRAM` = 3) that repeat an earlier one.

A number that cannot be measured (an edit that changes no position, a completion too short for
one n-gram) is `Measured(None, 0, …, reason)` and is shown as "not measured: reason", never 0.

This module knows nothing about how variants are chosen or generated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..bound import BoundSAE
from ..hooks import patch_activations
from ..models import pad_token_id
from .edit import Steering, current_values
from .generate import Completion, applying
from .interventions import SteeringError
from .places import Places, PromptBatch, places_for
from .steering import prompt_batch, steering_patch

NGRAM = 3
"""The n of the repeated n-grams a completion is scored by."""
ACTS_ON_ACTIVATION = ("scale", "ablate")
"""Modes that change a latent only where it is active (f = 0 stays 0)."""


class Measured(NamedTuple):
    """One reported number and what it covers."""

    value: float | None
    """The number; None when it could not be measured."""
    covers: int
    """How many positions, tokens or n-grams it is computed over."""
    unit: str
    """What `covers` counts ("positions", "tokens", "3-grams")."""
    reason: str | None = None
    """Why it was not measured (None when it was)."""

    def show(self, spec: str = "+.3f") -> str:
        """`+1.234 (12 positions)`, or `not measured: reason`."""
        if self.value is None:
            return f"not measured: {self.reason}"
        return f"{self.value:{spec}} ({self.covers} {self.unit})"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "covers": self.covers, "unit": self.unit, "not_measured": self.reason}


def unmeasured(unit: str, reason: str) -> Measured:
    """A number that could not be measured, and why."""
    return Measured(None, 0, unit, reason)


class VariantEffects(NamedTuple):
    """What one variant does to the target tokens, against the unsteered model."""

    next_token: Measured
    """Mean change of log p(targets) at the positions its edit changes, teacher-forced."""
    kl: Measured
    """Mean KL(P_unsteered ‖ P_variant) at the same positions (nats)."""
    completion: Measured
    """Mean log p(targets) along its own completion minus along the unsteered one (nats)."""

    def to_json(self) -> dict[str, Any]:
        return {name: m.to_json() for name, m in self._asdict().items()}


class Forced(NamedTuple):
    """Prompts followed by completions, as one batch to run teacher-forced."""

    batch: PromptBatch
    """[B, T] ids: each left-padded prompt, then its completion, right-padded (mask 0)."""
    prompt_width: int
    """P: columns from P on hold completion tokens."""
    completion_lengths: list[int]
    """Tokens of each row's completion."""


def forced_batch(
    bound: BoundSAE,
    prompts: Sequence[str],
    completions: Sequence[Sequence[int]],
    chat: bool = False,
    prepend_bos: bool = True,
) -> Forced:
    """`prompts` (tokenized as generation tokenizes them) each followed by its completion's tokens."""
    prompt = prompt_batch(bound, prompts, chat, prepend_bos)
    rows, width = prompt.input_ids.shape
    longest = max((len(c) for c in completions), default=0)
    pad = pad_token_id(bound.loaded_model.tokenizer)
    tail = torch.full((rows, longest), pad, dtype=torch.long)
    tail_mask = torch.zeros((rows, longest), dtype=torch.long)
    for r, tokens in enumerate(completions):
        tail[r, : len(tokens)] = torch.tensor(list(tokens), dtype=torch.long)
        tail_mask[r, : len(tokens)] = 1
    device = prompt.input_ids.device
    ids = torch.cat([prompt.input_ids, tail.to(device)], dim=1)
    mask = torch.cat([prompt.attention_mask, tail_mask.to(device)], dim=1)
    rows_ids = [list(p) + list(c) for p, c in zip(prompt.token_ids, completions)]
    return Forced(PromptBatch(ids, mask, rows_ids), width, [len(c) for c in completions])


def forced_logits(
    bound: BoundSAE, forced: Forced, steering: Steering | None, places: Places | None
) -> Tensor:
    """[B, T, V] float32 logits of a teacher-forced pass, edited by `steering` where `places` say."""
    model = bound.loaded_model.model
    ids, mask = forced.batch.input_ids, forced.batch.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    if steering is None:
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
    else:
        assert places is not None
        with torch.no_grad(), applying(model, steering_patch(steering, places, bound), 0):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
    return logits.float()


def hookpoint_activations(bound: BoundSAE, forced: Forced) -> tuple[Tensor, Tensor]:
    """(the activation [B, T, d] at the SAE's hookpoint, the [B, T, V] logits) of the unedited
    teacher-forced pass."""
    model = bound.loaded_model.model
    held: list[Tensor] = []

    def keep(act: Tensor) -> Tensor:
        held.append(act.detach())
        return act

    ids, mask = forced.batch.input_ids, forced.batch.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad(), patch_activations(model, bound.hookpoint, keep):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
    return held[0], logits.float()


def real_positions(bound: BoundSAE, forced: Forced) -> Tensor:
    """[B, T] bool: real tokens (not padding), BOS left out."""
    mask = forced.batch.attention_mask.bool().clone()
    bos = bound.loaded_model.tokenizer.bos_token_id
    if bos is not None:
        mask &= forced.batch.input_ids != int(bos)
    return mask


def edited_positions(
    bound: BoundSAE, steering: Steering, places: Places, acts: Tensor, real: Tensor
) -> tuple[Tensor, Tensor]:
    """([B, T] bool where `steering` changes the activation (see the module docstring), [B, T]
    bool where its place covers)."""
    width = acts.shape[1]
    covered = places.window(0, width)
    items = steering.interventions
    if steering.splice:
        return covered.any(0) & real, covered.any(0) & real
    placed = covered.any(0) & real
    needs = [i for i, item in enumerate(items) if item.mode in ACTS_ON_ACTIVATION or item.conditional]
    if needs:
        flat = acts.reshape(-1, acts.shape[-1]).float()
        with torch.no_grad():
            values, _, _ = current_values(bound.sae, flat, [items[i].latent for i in needs])
        active = (values > 0).T.reshape(len(needs), *acts.shape[:2])
        covered = covered.clone()
        for j, i in enumerate(needs):
            covered[i] &= active[j]
    return covered.any(0) & real, placed


def target_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """[...] log P(next token ∈ targets) under [..., V] logits."""
    return logits.log_softmax(-1)[..., targets].logsumexp(-1)


def check_finite(logits: Tensor, what: str) -> None:
    """Refuse logits an edit has made infinite or NaN."""
    if not bool(torch.isfinite(logits).all()):
        raise SteeringError(
            f"{what}: the model's next-token logits are not finite (the edit overflows the model's "
            "precision); lower the value"
        )


class PositionSums(NamedTuple):
    """Sums over the edited positions of one variant in one batch."""

    change: float
    """Σ (log p_variant(targets) − log p_unsteered(targets))."""
    kl: float
    """Σ KL(P_unsteered ‖ P_variant)."""
    positions: int
    """Positions summed."""
    covered: int
    """Tokens the edit's place covers (a superset of `positions`)."""


def position_sums(base: Tensor, edited: Tensor, where: Tensor, targets: Tensor, covered: int) -> PositionSums:
    """The sums of `PositionSums` over the positions `where` [B, T] of [B, T, V] logits."""
    if not bool(where.any()):
        return PositionSums(0.0, 0.0, 0, covered)
    p = base[where].log_softmax(-1)
    q = edited[where].log_softmax(-1)
    change = q[:, targets].logsumexp(-1) - p[:, targets].logsumexp(-1)
    kl = (p.exp() * (p - q)).sum(-1).clamp_min(0)
    return PositionSums(float(change.sum()), float(kl.sum()), int(where.sum()), covered)


def completion_change(variant: Sequence[Completion], unsteered: Sequence[Completion]) -> Measured:
    """Mean over prompts of the variant's mean log p(targets) along its completion minus the
    unsteered one's (counted over the variant's generated tokens)."""
    diffs = [
        v.target_logprob - u.target_logprob
        for v, u in zip(variant, unsteered)
        if v.target_logprob is not None and u.target_logprob is not None
    ]
    if not diffs:
        return unmeasured("tokens", "no completion was scored (no target tokens)")
    return Measured(sum(diffs) / len(diffs), sum(len(v.token_ids) for v in variant), "tokens")


def from_sums(sums: Sequence[PositionSums], reason: str) -> tuple[Measured, Measured]:
    """(next-token effect, KL) from per-batch sums; `reason` when no position was edited."""
    positions = sum(s.positions for s in sums)
    if positions == 0:
        return unmeasured("positions", reason), unmeasured("positions", reason)
    change = sum(s.change for s in sums) / positions
    kl = sum(s.kl for s in sums) / positions
    return Measured(change, positions, "positions"), Measured(kl, positions, "positions")


def repeated_ngrams(token_ids: Sequence[int], n: int = NGRAM) -> tuple[int, int]:
    """(n-grams that repeat an earlier n-gram of the same sequence, all its n-grams)."""
    seen: set[tuple[int, ...]] = set()
    repeats = total = 0
    for i in range(len(token_ids) - n + 1):
        gram = tuple(token_ids[i : i + n])
        total += 1
        repeats += gram in seen
        seen.add(gram)
    return repeats, total


def repetition(completions: Sequence[Completion], n: int = NGRAM) -> Measured:
    """The fraction of the completions' token n-grams that repeat an earlier one in the same completion."""
    pairs = [repeated_ngrams(c.token_ids, n) for c in completions]
    total = sum(t for _, t in pairs)
    unit = f"{n}-grams"
    if total == 0:
        return unmeasured(unit, f"no completion is {n} tokens long")
    return Measured(sum(r for r, _ in pairs) / total, total, unit)


def completion_nll(logits: Tensor, forced: Forced) -> tuple[float, int]:
    """(Σ −log p of every completion token under `logits` [B, T, V], how many tokens)."""
    logprobs = logits[:, forced.prompt_width - 1 : -1].log_softmax(-1)
    tokens = forced.batch.input_ids[:, forced.prompt_width :]
    picked = logprobs.gather(-1, tokens[..., None]).squeeze(-1)
    real = forced.batch.attention_mask[:, forced.prompt_width :].bool()
    return float(-picked[real].sum()), int(real.sum())


def perplexity(
    bound: BoundSAE, prompts: Sequence[str], completions: Sequence[Completion], chat: bool, prepend_bos: bool
) -> Measured:
    """exp(mean −log p) of the completions' tokens under the unsteered model, given their prompts."""
    forced = forced_batch(bound, prompts, [c.token_ids for c in completions], chat, prepend_bos)
    if sum(forced.completion_lengths) == 0:
        return unmeasured("tokens", "every completion is empty")
    nll, count = completion_nll(forced_logits(bound, forced, None, None), forced)
    return Measured(math.exp(nll / count), count, "tokens")


class ForcedReference(NamedTuple):
    """The unsteered teacher-forced pass of one batch of prompts, shared by every variant."""

    forced: Forced
    """Prompts followed by their unsteered completions."""
    prompt_batch: PromptBatch
    """The prompts alone (what the places are computed on)."""
    activations: Tensor
    """[B, T, d] at the SAE's hookpoint."""
    logits: Tensor
    """[B, T, V] float32."""
    real: Tensor
    """[B, T] bool: real tokens other than BOS."""
    first_row: int
    """The prompt number of row 0."""


def forced_reference(
    bound: BoundSAE,
    prompts: Sequence[str],
    unsteered: Sequence[Completion],
    chat: bool,
    prepend_bos: bool,
    first_row: int = 0,
) -> ForcedReference:
    """Run one batch of prompts with their unsteered completions once, unedited."""
    # a completion's EOS ends it: nothing is predicted after it
    tokens = [c.token_ids[:-1] if c.stopped == "eos" else c.token_ids for c in unsteered]
    forced = forced_batch(bound, prompts, tokens, chat, prepend_bos)
    acts, logits = hookpoint_activations(bound, forced)
    check_finite(logits, "unsteered")
    batch = prompt_batch(bound, prompts, chat, prepend_bos)
    return ForcedReference(forced, batch, acts, logits, real_positions(bound, forced), first_row)


def next_token_sums(
    bound: BoundSAE, reference: ForcedReference, steering: Steering, targets: Tensor, name: str
) -> PositionSums:
    """One variant's sums over the positions its edit changes in one batch (see the module docstring)."""
    places = places_for(
        steering.interventions, reference.prompt_batch, bound.loaded_model.tokenizer, reference.first_row
    )
    where, placed = edited_positions(bound, steering, places, reference.activations, reference.real)
    covered = int(placed.sum())
    if not bool(where.any()):
        return PositionSums(0.0, 0.0, 0, covered)
    logits = forced_logits(bound, reference.forced, steering, places)
    check_finite(logits, name)
    return position_sums(reference.logits, logits, where, targets.to(logits.device), covered)


__all__ = [
    "NGRAM",
    "Forced",
    "ForcedReference",
    "Measured",
    "PositionSums",
    "VariantEffects",
    "check_finite",
    "completion_change",
    "edited_positions",
    "forced_batch",
    "forced_logits",
    "forced_reference",
    "from_sums",
    "next_token_sums",
    "perplexity",
    "position_sums",
    "repeated_ngrams",
    "repetition",
    "target_logprobs",
    "unmeasured",
]
