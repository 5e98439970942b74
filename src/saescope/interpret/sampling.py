"""Choosing which examples a language model sees: top, quantile-stratified, mixed, and held-out mixes.

Explainers read a few activating examples: the `top` ones (strongest activation), a sample
`stratified` over activation quantiles (so that weak firings are explained too), or `mixed` (half
top, half stratified from the rest). Scorers use `held_out_mix`: the same number of examples from
each activation quantile plus as many non-activating ones, shuffled. Every choice is seeded, so
the same record always yields the same prompts (and hits the response cache on a rerun).

This module knows nothing about prompts, language models or scores.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from ..example import Example

Strategy = Literal["top", "quantiles", "mixed"]
STRATEGIES: tuple[Strategy, ...] = ("top", "quantiles", "mixed")


def by_activation(examples: Sequence[Example]) -> list[Example]:
    """Examples sorted by their maximum activation, strongest first (stable for ties)."""
    return sorted(examples, key=lambda ex: -ex.max_activation)


def quantile_bins(examples: Sequence[Example], n_bins: int) -> list[list[Example]]:
    """Activating examples split into `n_bins` bins of (nearly) equal size by activation, strongest
    bin first; fewer bins when there are fewer examples."""
    ranked = by_activation([ex for ex in examples if ex.fires])
    n_bins = max(1, min(n_bins, len(ranked)))
    bounds = [round(i * len(ranked) / n_bins) for i in range(n_bins + 1)]
    return [ranked[bounds[i] : bounds[i + 1]] for i in range(n_bins)]


def stratified(examples: Sequence[Example], n: int, n_bins: int = 4, seed: int = 0) -> list[Example]:
    """Up to `n` activating examples spread evenly over `n_bins` activation quantiles (random within
    each bin), strongest bin first; leftover slots go to the bins that still have examples."""
    rng = random.Random(seed)
    bins = [rng.sample(b, len(b)) for b in quantile_bins(examples, n_bins)]
    chosen: list[Example] = []
    while len(chosen) < n and any(bins):
        for b in bins:
            if b and len(chosen) < n:
                chosen.append(b.pop())
    return by_activation(chosen)


def select_examples(
    examples: Sequence[Example], n: int, strategy: Strategy = "mixed", n_bins: int = 4, seed: int = 0
) -> list[Example]:
    """Up to `n` activating examples chosen by `strategy` (`top`, `quantiles` or `mixed`)."""
    active = [ex for ex in examples if ex.fires]
    if strategy == "top":
        return by_activation(active)[:n]
    if strategy == "quantiles":
        return stratified(active, n, n_bins, seed)
    if strategy != "mixed":
        raise ValueError(f"unknown example strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    n_top = (n + 1) // 2
    top = by_activation(active)[:n_top]
    rest = [ex for ex in active if all(ex is not t for t in top)]
    return top + stratified(rest, n - len(top), n_bins, seed)


def held_out_mix(
    active: Sequence[Example],
    inactive: Sequence[Example],
    per_bin: int = 5,
    n_bins: int = 4,
    seed: int = 0,
) -> list[tuple[Example, bool]]:
    """Scoring examples with their truth (`True`: the latent fires there): `per_bin` activating
    examples from each of `n_bins` activation quantiles and as many non-activating ones, shuffled."""
    rng = random.Random(seed)
    positives: list[Example] = []
    for b in quantile_bins(active, n_bins):
        positives.extend(rng.sample(b, min(per_bin, len(b))))
    negatives = rng.sample(list(inactive), min(len(positives), len(inactive)))
    mix = [(ex, True) for ex in positives] + [(ex, False) for ex in negatives]
    rng.shuffle(mix)
    return mix
