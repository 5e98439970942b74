"""How two SAEs' latents fire together on the same tokens, read from a latent index of each.

    reason = different_tokens(index_a, index_b)      # None when both index the same tokens
    stats = pair_statistics(index_a, index_b, latents_a, latents_b)
    stats.correlation[i]      # Pearson r of the pair's activations over every indexed token
    stats.coactivation[i]     # of the tokens latent_b fires on, the fraction latent_a fires on too

Two indexes cover the same tokens when they were built from the same text (the same corpus cut
the same way from the same first input, the same number of tokens) or the same activation store:
a token key (`doc_id * stride + position`) then names one token in both. Over those N tokens a
latent's activation is 0 where it does not fire, so the correlation counts the tokens neither
fires on too; it is NaN for a latent that never fires on them (no variance: not measured).

This module knows nothing about decoders or how pairs are chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..index import Index

SAME_TEXT = ("source", "corpus", "store", "start", "stride", "tokens", "docs")
"""What two index headers must share for their token keys to name the same tokens."""


class PairStatistics(NamedTuple):
    """Pairs of latents (one of each SAE) over the tokens both indexes cover."""

    tokens: int
    """Tokens both indexes cover (every statistic is over these)."""
    fires_a: np.ndarray
    """[m] tokens the A latent fires on."""
    fires_b: np.ndarray
    """[m] tokens the B latent fires on."""
    both: np.ndarray
    """[m] tokens both fire on."""
    correlation: np.ndarray
    """[m] Pearson correlation of their activations (NaN where one never fires)."""

    @property
    def coactivation(self) -> np.ndarray:
        """[m] of the tokens the B latent fires on, the fraction the A latent fires on too (NaN
        where the B latent never fires)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.fires_b > 0, self.both / np.maximum(self.fires_b, 1), np.nan)


def different_tokens(a: Index, b: Index) -> str | None:
    """Why two indexes' token keys do not name the same tokens, or None when they do."""
    ha, hb = a.header, b.header
    for name in SAME_TEXT:
        if getattr(ha, name) != getattr(hb, name):
            there, here = getattr(ha, name), getattr(hb, name)
            return f"their indexes cover different tokens ({name}: {there!r} and {here!r})"
    return None


def moments(values: np.ndarray, n: int) -> tuple[float, float]:
    """(mean, variance) of a latent's activations over `n` tokens, zeros where it does not fire."""
    total = float(values.sum(dtype=np.float64))
    mean = total / n
    return mean, float((values.astype(np.float64) ** 2).sum()) / n - mean * mean


def pair_statistics(a: Index, b: Index, latents_a: Sequence[int], latents_b: Sequence[int]) -> PairStatistics:
    """Firing counts, co-firing and the activation correlation of each pair (`latents_a[i]`,
    `latents_b[i]`) over the tokens both indexes cover (check `different_tokens` first)."""
    n = a.tokens
    m = len(latents_a)
    fires_a, fires_b, both = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, np.int64)
    correlation = np.full(m, np.nan)
    for i, (la, lb) in enumerate(zip(latents_a, latents_b)):
        keys_a, acts_a = a.postings(int(la))
        keys_b, acts_b = b.postings(int(lb))
        common, at_a, at_b = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
        fires_a[i], fires_b[i], both[i] = len(keys_a), len(keys_b), len(common)
        if len(keys_a) == 0 or len(keys_b) == 0:
            continue
        mean_a, var_a = moments(acts_a, n)
        mean_b, var_b = moments(acts_b, n)
        if var_a <= 0 or var_b <= 0:
            continue
        cross = float((acts_a[at_a].astype(np.float64) * acts_b[at_b]).sum()) / n
        correlation[i] = (cross - mean_a * mean_b) / np.sqrt(var_a * var_b)
    return PairStatistics(n, fires_a, fires_b, both, correlation)


__all__ = ["SAME_TEXT", "PairStatistics", "different_tokens", "pair_statistics"]
