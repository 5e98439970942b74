"""Metrics with bootstrap 95% intervals, resampling whole examples.

Every metric here is a function of *sums* of per-example statistics: a confusion count
(`tp, fp, fn, tn`) for accuracy, precision, recall and F1; positive and negative counts at each
distinct score level for AUROC; `n, Σx, Σy, Σx², Σy², Σxy` for Pearson correlation; `Σv, n` for a
mean. So one bootstrap resample is a vector of example multiplicities (multinomial), and all
resamples together are a single matrix product `weights @ rows` — 1000 resamples of a few hundred
examples take milliseconds, and examples with several tokens are resampled as clusters.
Undefined values (no positives in a resample, a constant prediction) are NaN and left out of the
percentiles. The generator is seeded, so intervals are reproducible; drawing the multiplicities
costs far more than using them, so each (examples, resamples, seed) draws them once.

This module knows nothing about latents, explanations or language models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]
"""Maps summed statistics (`(..., K)`) to metric values (`(...)`)."""

N_RESAMPLES = 1000
LEVEL = 0.95


class Interval(NamedTuple):
    """A metric's value on all examples and its bootstrap interval."""

    value: float
    low: float
    high: float


NAN_INTERVAL = Interval(float("nan"), float("nan"), float("nan"))


@lru_cache(maxsize=64)
def resample_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Multiplicities of `n` examples in each of `n_resamples` resamples (read-only, float64)."""
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    out = weights.astype(np.float64)
    out.flags.writeable = False
    return out


def bootstrap(
    rows: np.ndarray, metric: Metric, n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    """`metric` of the summed `rows` (one per example) with a percentile bootstrap interval."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        return NAN_INTERVAL
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(metric(rows.sum(axis=0)))
        samples = metric(resample_weights(rows.shape[0], n_resamples, seed) @ rows)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Interval(value, float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


# ----------------------------------------------------------------------------- per-example rows


def _grouped(values: np.ndarray, groups: Sequence[int], n_groups: int) -> np.ndarray:
    """Sum `values` (N, K) into `n_groups` rows by `groups` (N,)."""
    out = np.zeros((n_groups, values.shape[1]))
    np.add.at(out, np.asarray(groups, dtype=np.int64), values)
    return out


def confusion_rows(
    labels: Sequence[bool], predicted: Sequence[bool], groups: Sequence[int], n_groups: int
) -> np.ndarray:
    """Per-example `tp, fp, fn, tn` counts; `groups[i]` is the example of item `i`."""
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    items = np.stack([y & p, ~y & p, y & ~p, ~y & ~p], axis=1).astype(np.float64)
    return _grouped(items.reshape(len(y), 4), groups, n_groups)


def auroc_rows(
    labels: Sequence[bool], scores: Sequence[float], groups: Sequence[int], n_groups: int
) -> np.ndarray:
    """Per-example positive counts then negative counts at each distinct score level (ascending)."""
    y = np.asarray(labels, dtype=bool)
    levels, index = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    u = len(levels)
    items = np.zeros((len(y), 2 * u))
    items[np.arange(len(y)), index.reshape(-1) + np.where(y, 0, u)] = 1.0
    return _grouped(items, groups, n_groups)


def pearson_rows(x: Sequence[float], y: Sequence[float], groups: Sequence[int], n_groups: int) -> np.ndarray:
    """Per-example `n, Σx, Σy, Σx², Σy², Σxy`."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    items = np.stack([np.ones_like(a), a, b, a * a, b * b, a * b], axis=1)
    return _grouped(items.reshape(len(a), 6), groups, n_groups)


def mean_rows(values: Sequence[float]) -> np.ndarray:
    """One row `v, 1` per finite value."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    return np.stack([v, np.ones_like(v)], axis=1) if v.size else np.zeros((0, 2))


# ----------------------------------------------------------------------------- metrics of sums


def accuracy(c: np.ndarray) -> np.ndarray:
    return (c[..., 0] + c[..., 3]) / c.sum(axis=-1)


def precision(c: np.ndarray) -> np.ndarray:
    return c[..., 0] / (c[..., 0] + c[..., 1])


def recall(c: np.ndarray) -> np.ndarray:
    return c[..., 0] / (c[..., 0] + c[..., 2])


def f1(c: np.ndarray) -> np.ndarray:
    return 2 * c[..., 0] / (2 * c[..., 0] + c[..., 1] + c[..., 2])


def balanced_accuracy(c: np.ndarray) -> np.ndarray:
    return (recall(c) + c[..., 3] / (c[..., 3] + c[..., 1])) / 2


def auroc(s: np.ndarray) -> np.ndarray:
    """Probability that a random positive scores above a random negative (ties count half)."""
    u = s.shape[-1] // 2
    pos, neg = s[..., :u], s[..., u:]
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=-1)
    return wins / (pos.sum(axis=-1) * neg.sum(axis=-1))


def pearson(s: np.ndarray) -> np.ndarray:
    n, sx, sy, sxx, syy, sxy = (s[..., i] for i in range(6))
    cov = n * sxy - sx * sy
    return cov / np.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))


def mean(s: np.ndarray) -> np.ndarray:
    return s[..., 0] / s[..., 1]


CONFUSION_METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "balanced_accuracy": balanced_accuracy,
}
"""The metrics of a confusion count, by name."""
