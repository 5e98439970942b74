"""Metrics with 95% intervals: Wilson score intervals for proportions, a bootstrap over examples
for the rest.

Every metric here is a function of *sums* of per-example statistics: a confusion count
(`tp, fp, fn, tn`) for accuracy, precision, recall and F1; positive and negative counts at each
distinct score level for AUROC; `n, Σx, Σy, Σx², Σy², Σxy` for Pearson correlation; `Σv, n` for a
mean. So one bootstrap resample is a vector of example multiplicities (multinomial), and all
resamples together are a single matrix product `weights @ rows` — 1000 resamples of a few hundred
examples take milliseconds, and examples with several tokens are resampled as clusters. The
generator is seeded, so intervals are reproducible; drawing the multiplicities costs far more than
using them, so each (examples, resamples, seed) draws them once.

`estimate` is what scorers report. Its interval, chosen per metric:

- accuracy, precision and recall are proportions (successes of trials: precision is over the
  items predicted to fire, recall over those that fire), and get the Wilson score interval. A
  percentile bootstrap of a handful of trials is far too narrow — 4 of 4 resamples to [1, 1] —
  while Wilson's stays honest (3 of 4: [0.301, 0.954]). When an example holds several items (the
  statistics scorer's tokens), items are not independent, and the interval is the wider of
  Wilson's and the bootstrap over examples at each end;
- F1, AUROC, Pearson correlation and means get the percentile bootstrap over examples (none from
  a single example: every resample would be that example).

Each estimate carries its *support* — what the value rests on: the trials of a proportion, the
firing items for F1, the rarer class for AUROC, the examples for a correlation or the values of a
mean — and an interval resting on fewer than `FEW` is flagged wide where it is shown. A metric
with no value (precision when nothing is predicted to fire, recall when nothing fires, AUROC over
one class, a correlation with a constant) is NaN with the reason, never a stand-in number;
undefined resamples are left out of the percentiles.

This module knows nothing about latents, explanations or language models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]
"""Maps summed statistics (`(..., K)`) to metric values (`(...)`)."""

N_RESAMPLES = 1000
LEVEL = 0.95
FEW = 10
"""An interval resting on fewer items than this (its `support`) is flagged wide where shown."""


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


# ----------------------------------------------------------------------------- intervals


def wilson(successes: float, trials: float, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion of `successes` in `trials` (NaN for no trials)."""
    successes, trials = float(successes), float(trials)
    if trials <= 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = successes / trials
    shrink = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / shrink
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / shrink
    return max(0.0, centre - half), min(1.0, centre + half)


class Estimate(NamedTuple):
    """A metric's value on all examples, its 95% interval, what it rests on, and why it has no value."""

    value: float
    """The metric over all examples (NaN when it has no value)."""
    low: float
    """Lower end of the interval (NaN when there is none)."""
    high: float
    """Upper end of the interval."""
    support: int
    """What the value rests on (trials of a proportion, firing items, the rarer class, examples)."""
    undefined: str
    """Why there is no value ("" when there is one)."""


class _Kind(NamedTuple):
    """How a metric's interval, support and lack of value are found."""

    proportion: Callable[[np.ndarray], tuple[float, float]] | None
    """(successes, trials) of summed statistics, for a Wilson interval; None: bootstrap."""
    support: Callable[[np.ndarray], float]
    """What the value rests on, from the per-example rows."""
    undefined: str
    """Why the metric can have no value."""


TP, FP, FN, TN = 0, 1, 2, 3
"""Columns of a confusion count."""


def _counts(rows: np.ndarray, *columns: int) -> float:
    return float(rows[:, list(columns)].sum())


def _rarer_class(rows: np.ndarray) -> float:
    half = rows.shape[1] // 2
    return float(min(rows[:, :half].sum(), rows[:, half:].sum()))


_KINDS: dict[Metric, _Kind] = {
    accuracy: _Kind(lambda c: (c[TP] + c[TN], c.sum()), lambda r: float(r.sum()), "nothing was scored"),
    precision: _Kind(
        lambda c: (c[TP], c[TP] + c[FP]), lambda r: _counts(r, TP, FP), "nothing was predicted to fire"
    ),
    recall: _Kind(lambda c: (c[TP], c[TP] + c[FN]), lambda r: _counts(r, TP, FN), "nothing fired"),
    f1: _Kind(None, lambda r: _counts(r, TP, FN), "nothing fired or was predicted to"),
    balanced_accuracy: _Kind(
        None, lambda r: min(_counts(r, TP, FN), _counts(r, FP, TN)), "the examples scored are of one class"
    ),
    auroc: _Kind(None, _rarer_class, "the examples scored all fire or all stay quiet"),
    pearson: _Kind(
        None, lambda r: float((r[:, 0] > 0).sum()), "the predictions or the activations are constant"
    ),
    mean: _Kind(None, lambda r: float(r[:, 1].sum()), "no values"),
}
"""The metrics above, each with how its interval and support are found."""

_OTHER = _Kind(None, lambda r: float(r.shape[0]), "undefined on these examples")


def estimate(
    rows: np.ndarray, metric: Metric, n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Estimate:
    """`metric` of the summed `rows` (one per example) with its interval (see the module docstring)."""
    kind = _KINDS.get(metric, _OTHER)
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "nothing was scored")
    support = int(kind.support(rows))
    boot = bootstrap(rows, metric, n_resamples, seed, level)
    if not math.isfinite(boot.value):
        return Estimate(math.nan, math.nan, math.nan, support, kind.undefined)
    several = rows.shape[0] > 1  # a bootstrap over one example says nothing
    if kind.proportion is None:
        low, high = (boot.low, boot.high) if several else (math.nan, math.nan)
        return Estimate(boot.value, float(low), float(high), support, "")
    low, high = wilson(*kind.proportion(rows.sum(axis=0)), level)
    clustered = bool((rows.sum(axis=1) > 1).any())
    if clustered and several and math.isfinite(boot.low):
        low, high = min(low, boot.low), max(high, boot.high)
    return Estimate(boot.value, float(low), float(high), support, "")


def interval_text(value: float, low: float, high: float) -> str:
    """`0.850 [0.750, 0.950]`; the value alone when there is no interval."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"
