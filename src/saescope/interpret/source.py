"""Latent records from a latent index: what an explainer may read and what only scorers see.

For one latent, `IndexRecords.record` reads its firings (`Index.postings`) and splits them:

- train (shown to explainers): the strongest half of `train_examples` firings plus the other half
  spread evenly over activation quantiles of the rest (weak firings get explained too);
- held-out activating (scorers only): `per_bin` firings from each of `bins` activation quantiles
  of the firings left, none whose window overlaps a train window, so no scored token was seen;
- held-out non-activating: random windows where the latent fires nowhere (`Index.random_examples`),
  as many as the activating ones, and as many again as `background` contrast for the statistics
  explainer;
- corpus-wide token counts: how often the latent fires on each token and how often that token
  occurs in the index (`Index.token_firings`, `Index.token_counts`).

A rare latent keeps a third of its firings (at most the held-out number) for scoring, so a latent
firing 10 times is explained from 7 windows and scored on 3. Every draw is seeded by the latent
and `seed`: the same latent always gets the same examples, and so the same prompts (which the
response cache then answers on a rerun).

This module knows nothing about language models, prompts, scores or where results are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..example import Example
from ..index.reader import Index
from .records import LatentRecord, TokenStat


class RecordSettings(NamedTuple):
    """How many examples of which kind a record gets."""

    train_examples: int = 40
    """Activating windows explainers may read."""
    bins: int = 4
    """Activation quantiles the stratified train and held-out firings are drawn from."""
    per_bin: int = 5
    """Held-out activating windows per quantile (as many non-activating ones are added)."""
    before: int = 12
    """Tokens of context before a window's activating token."""
    after: int = 4
    """Tokens of context after it."""
    seed: int = 0
    """Seed of every draw (combined with the latent)."""

    @property
    def held_out(self) -> int:
        """Held-out activating windows wanted."""
        return self.bins * self.per_bin


class Firings(NamedTuple):
    """Which of a latent's firings (indices into its postings) go where."""

    train: np.ndarray
    """Shown to explainers: the strongest first, then the stratified ones."""
    held_out: np.ndarray
    """Scored on: none within a window's reach of a train firing."""


def stratified_pick(ranked: np.ndarray, k: int, bins: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `k` of `ranked` (firing indices, strongest first) spread evenly over `bins` equal-count
    activation bins, random within each bin; leftover slots go to bins that still have firings."""
    groups = np.array_split(ranked, max(1, min(bins, len(ranked)))) if len(ranked) else []
    quota = [0] * len(groups)
    left = min(k, len(ranked))
    while left > 0:
        for g, group in enumerate(groups):
            if left > 0 and quota[g] < len(group):
                quota[g] += 1
                left -= 1
    picked = [rng.choice(group, size=q, replace=False) for group, q in zip(groups, quota) if q]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def near(keys: np.ndarray, others: np.ndarray, reach: int, stride: int) -> np.ndarray:
    """For each token key of `keys`: whether some key of `others` lies in the same document within
    `reach` positions of it (their context windows then share tokens)."""
    if not len(others) or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    sorted_others = np.sort(others)
    found = np.zeros(len(keys), dtype=bool)
    at = np.searchsorted(sorted_others, keys)
    for side in (at - 1, at):
        ok = (side >= 0) & (side < len(sorted_others))
        other = sorted_others[np.clip(side, 0, len(sorted_others) - 1)]
        same_doc = other // stride == keys // stride
        found |= ok & same_doc & (np.abs(other - keys) <= reach)
    return found


def split_firings(
    keys: np.ndarray, values: np.ndarray, settings: RecordSettings, stride: int, rng: np.random.Generator
) -> Firings:
    """Train and held-out firings of one latent (see the module docstring)."""
    ranked = np.lexsort((keys, -values))  # strongest first; ties: the earlier token
    reserve = min(settings.held_out, len(ranked) // 3)
    n_train = min(settings.train_examples, len(ranked) - reserve)
    n_top = (n_train + 1) // 2
    rest = ranked[n_top:]
    spread = stratified_pick(rest, n_train - n_top, settings.bins, rng)
    train = np.concatenate([ranked[:n_top], spread]).astype(np.int64)
    left = rest[~np.isin(rest, spread)]
    reach = settings.before + settings.after
    left = left[~near(keys[left], keys[train], reach, stride)]
    held = stratified_pick(left, settings.held_out, settings.bins, rng).astype(np.int64)
    return Firings(train, held)


def without_overlap(examples: Sequence[Example], taken: Sequence[Example], reach: int) -> list[Example]:
    """`examples` less those within `reach` positions of one of `taken` in the same document."""
    spots = {(t.doc_id, t.position) for t in taken}
    return [
        e
        for e in examples
        if not any((e.doc_id, p) in spots for p in range(e.position - reach, e.position + reach + 1))
    ]


class IndexRecords:
    """`LatentRecord`s of the latents of one index (see the module docstring)."""

    def __init__(self, index: Index, settings: RecordSettings | None = None) -> None:
        self.index = index
        self.settings = settings or RecordSettings()
        stats = index.stats()
        self.counts = stats.column("count").to_numpy()
        self.frequency = stats.column("frequency").to_numpy()
        self.max = stats.column("max").to_numpy()
        self._token_counts: dict[int, int] | None = None

    def token_stats(self, latent: int) -> tuple[TokenStat, ...]:
        """How often the latent fires on each token, and how often the token occurs in the index
        (tokens that decode to the same text are counted together)."""
        if self._token_counts is None:
            self._token_counts = self.index.token_counts()
        firings = self.index.token_firings(latent)
        ids = sorted(firings)
        merged: dict[str, list[int]] = {}
        for token_id, text in zip(ids, self.index.decode(ids)):
            counts = merged.setdefault(text, [0, 0])
            counts[0] += firings[token_id]
            counts[1] += self._token_counts.get(token_id, firings[token_id])
        return tuple(TokenStat(text, f, o) for text, (f, o) in merged.items())

    def windows(self, latent: int, keys: np.ndarray, values: np.ndarray, chosen: np.ndarray) -> list[Example]:
        s = self.settings
        centres = list(zip(keys[chosen].tolist(), values[chosen].tolist()))
        return self.index.windows(latent, centres, s.before, s.after)

    def quiet_windows(self, latent: int, n: int) -> tuple[list[Example], list[Example]]:
        """(held-out, background): random windows where the latent fires nowhere, not overlapping."""
        s = self.settings
        found = self.index.random_examples(latent, 2 * n, s.seed, s.before, s.after)
        held = found[:n]
        return held, without_overlap(found[n:], held, s.before + s.after)

    def record(self, latent: int) -> LatentRecord:
        """Everything the interpreter uses about `latent` (empty examples when it never fires)."""
        s = self.settings
        latent = self.index.check_latent(latent)
        keys, values = self.index.postings(latent)
        count = int(self.counts[latent])
        if not len(keys):
            return LatentRecord(latent, (), count=count)
        rng = np.random.default_rng([s.seed, latent])
        firings = split_firings(keys, values, s, self.index.stride, rng)
        both = self.windows(latent, keys, values, np.concatenate([firings.train, firings.held_out]))
        train, active = both[: len(firings.train)], both[len(firings.train) :]
        quiet, background = self.quiet_windows(latent, s.held_out)
        return LatentRecord(
            latent,
            tuple(train),
            tuple(active) + tuple(quiet),
            tuple(background),
            frequency=float(self.frequency[latent]),
            count=count,
            max_activation=float(self.max[latent]),
            token_stats=self.token_stats(latent),
        )


__all__ = ["Firings", "IndexRecords", "RecordSettings", "near", "split_firings", "stratified_pick"]
