"""One latent's examples from an index's storage: its top activations, a few from each activation
quantile, and random windows where it does not fire, each with its context window.

The centres are chosen and the windows cut and filled by the pure functions of `windows`; this
module reads what they need through `IndexStorage`: `top.parquet` (or the postings, for more than
it keeps), the latent's postings inside the windows only, and the documents. `bulk` answers the
same for many latents at once through the same `windows` functions.

This module knows nothing about how the index was built, nor about SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow.compute as pc

from ..example import Example
from .format import TOP
from .results import QuantileExamples
from .storage import IndexStorage
from .windows import quantile_centres, spans, top_centres, window_examples


def examples_around(
    storage: IndexStorage, latent: int, centres: Sequence[tuple[int, float]], before: int, after: int
) -> list[Example]:
    """Examples around token keys `centres` ((key, activation) pairs), with `before` and `after`
    tokens of context."""
    stride = storage.stride
    docs = storage.doc_tokens([k // stride for k, _ in centres])
    windows = spans(centres, {doc: len(ids) for doc, ids in docs.items()}, stride, before, after)
    ranges = [(w.doc * stride + w.lo, w.doc * stride + w.hi) for w in windows]
    keys, values = storage.postings_in(latent, ranges)
    decoded = {doc: storage.decode(ids.tolist()) for doc, ids in docs.items()}
    return window_examples(centres, windows, decoded, keys, values, stride)


def top_examples(storage: IndexStorage, latent: int, n: int, before: int, after: int) -> list[Example]:
    """The latent's `n` largest activations with their context (ties: earlier token first)."""
    latent = storage.check_latent(latent)
    kept = int(storage.header.settings.get("top_examples", 0))
    if 0 < n <= kept:
        top = storage.sorted_file(TOP, "top examples", ["latent", "rank"])
        table = top.read(top.groups(latent), ["latent", "rank", "token", "activation"])
        rows = table.filter(pc.equal(table.column("latent"), latent)).sort_by("rank").slice(0, n)
        centres = list(zip(rows.column("token").to_pylist(), rows.column("activation").to_pylist()))
    else:
        centres = top_centres(*storage.postings(latent), n)
    return examples_around(storage, latent, centres, before, after)


def quantile_examples(
    storage: IndexStorage,
    latent: int,
    quantiles: int,
    per_quantile: int,
    seed: int,
    context: tuple[int, int],
) -> list[QuantileExamples]:
    """`per_quantile` random examples from each of `quantiles` equal-count bins of the latent's
    activations (fewer bins when it fires fewer times); `context`: tokens before and after."""
    drawn = quantile_centres(*storage.postings(latent), latent, quantiles, per_quantile, seed)
    return [
        QuantileExamples(g.quantile, g.low, g.high, examples_around(storage, latent, g.centres, *context))
        for g in drawn
    ]


def random_examples(
    storage: IndexStorage, latent: int, n: int, seed: int, before: int, after: int
) -> list[Example]:
    """Up to `n` windows around random tokens where `latent` fires nowhere in the window (fewer
    when it fires almost everywhere)."""
    keys, _ = storage.postings(latent)
    stride = storage.stride
    candidates = np.unique(storage.random_tokens(8 * n + 8, seed + int(latent)))
    candidates = np.random.default_rng([seed, int(latent)]).permutation(candidates)
    chosen: list[tuple[int, float]] = []
    for key in candidates.tolist():
        doc, position = divmod(key, stride)
        lo, hi = doc * stride + max(0, position - before), doc * stride + position + after + 1
        a, b = np.searchsorted(keys, [lo, hi])
        if a == b:
            chosen.append((key, 0.0))
        if len(chosen) == n:
            break
    return examples_around(storage, latent, chosen, before, after)


__all__ = ["examples_around", "quantile_examples", "random_examples", "top_examples"]
