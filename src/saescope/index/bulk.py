"""Answers for many latents at once: each table read once for a run of latents, not once per latent.

A dashboard asks the same questions of every latent. One latent at a time, that costs a SQL query
per relation and a few Parquet reads per example list (~11 index calls a page). Here each
per-latent table (`top`, `cooccurrence`, `neighbours`, `logits`, all sorted by latent) is read once
for the whole run of latents asked — only the row groups whose latent range overlaps it —, each
postings bucket once (the last one read stays in memory: top and quantile examples of a bucket's
latents share it), the documents the examples come from once, each decoded once; then the rows are
cut per latent. Memory follows the latents asked: a dashboard asks a bucket or a few at a time.

The answers equal the per-latent methods' of `Index` (same order, ties, values): both pick and
cut examples with `windows`, and the relation orders below are the SQL `ORDER BY`s of `reader`.

This module knows nothing about pages, HTML or how the index was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .format import COOCCURRENCE, LOGITS, NEIGHBOURS, TOP
from .lookup import SortedFile
from .results import Cooccurrence, Example, LogitEffects, Neighbour, QuantileExamples, TokenEffect
from .windows import quantile_centres, spans, top_centres, window_examples

if TYPE_CHECKING:
    from .reader import Index

Postings = tuple[np.ndarray, np.ndarray]
"""One latent's postings: token keys (ascending, int64) and activations (float32)."""


def latent_rows(file: SortedFile, latents: Sequence[int], columns: Sequence[str]) -> pa.Table:
    """Rows of a latent-sorted file whose latent is one of `latents` (only the row groups whose
    latent range overlaps theirs are read)."""
    if not latents:
        return file.read([], columns)
    table = file.read(file.groups_between(min(latents), max(latents)), columns)
    return table.filter(np.isin(table.column("latent").to_numpy(), np.asarray(latents)))


def split_by_latent(table: pa.Table, order: Sequence[tuple[str, str]]) -> dict[int, pa.Table]:
    """A table's rows per latent, each sorted by `order` (pyarrow sort keys)."""
    table = table.sort_by([("latent", "ascending"), *order])
    latents = table.column("latent").to_numpy()
    found, starts = np.unique(latents, return_index=True)
    ends = [*starts[1:].tolist(), len(latents)]
    return {int(k): table.slice(a, b - a) for k, a, b in zip(found.tolist(), starts.tolist(), ends)}


def cooccurring(index: Index, latents: Sequence[int], n: int) -> dict[int, list[Cooccurrence]]:
    """`Index.cooccurring` of each latent (ORDER BY count DESC, other LIMIT n)."""
    file = index.sorted_file(COOCCURRENCE, "co-occurrence counts", ["latent"])
    rows = split_by_latent(
        latent_rows(file, latents, ["latent", "other", "count"]),
        [("count", "descending"), ("other", "ascending")],
    )
    counts = index.stats().column("count").to_numpy()
    out: dict[int, list[Cooccurrence]] = {}
    for latent in latents:
        found = rows.get(latent, pa.table({"other": [], "count": []})).slice(0, n)
        own = counts[latent]
        out[latent] = [
            Cooccurrence(int(o), int(c), float(c / max(own + counts[o] - c, 1)))
            for o, c in zip(found.column("other").to_pylist(), found.column("count").to_pylist())
        ]
    return out


def neighbours(index: Index, latents: Sequence[int], n: int) -> dict[int, list[Neighbour]]:
    """`Index.neighbours` of each latent (ORDER BY cosine DESC, other LIMIT n)."""
    file = index.sorted_file(NEIGHBOURS, "decoder neighbours", ["latent"])
    rows = split_by_latent(
        latent_rows(file, latents, ["latent", "other", "cosine"]),
        [("cosine", "descending"), ("other", "ascending")],
    )
    out: dict[int, list[Neighbour]] = {}
    for latent in latents:
        found = rows.get(latent, pa.table({"other": [], "cosine": []})).slice(0, n)
        out[latent] = [
            Neighbour(int(o), float(c))
            for o, c in zip(found.column("other").to_pylist(), found.column("cosine").to_pylist())
        ]
    return out


def logit_effects(index: Index, latents: Sequence[int], n: int) -> dict[int, LogitEffects]:
    """`Index.logit_effects` of each latent (rank < n, by side and rank)."""
    what = "logit effects (the model could not be loaded when it was built)"
    table = latent_rows(
        index.sorted_file(LOGITS, what, ["latent"]), latents, ["latent", "side", "rank", "token_id", "effect"]
    )
    table = table.filter(pc.less(table.column("rank"), n))
    rows = split_by_latent(table, [("rank", "ascending")])
    out: dict[int, LogitEffects] = {}
    for latent in latents:
        sides: dict[str, list[TokenEffect]] = {"top": [], "bottom": []}
        found = rows.get(latent)
        if found is not None:
            ids = found.column("token_id").to_pylist()
            for side, token_id, token, effect in zip(
                found.column("side").to_pylist(), ids, index.decode(ids), found.column("effect").to_pylist()
            ):
                sides[str(side)].append(TokenEffect(int(token_id), token, float(effect)))
        out[latent] = LogitEffects(sides["top"], sides["bottom"])
    return out


# ----- examples ------------------------------------------------------------------------------
def bucket_postings(index: Index, bucket: int) -> dict[int, Postings]:
    """Every latent's postings in one bucket file, read whole (the bucket is cut per latent)."""
    file = index.bucket(bucket * index.header.bucket_latents)
    table = file.read(range(file.file.metadata.num_row_groups), ["latent", "token", "activation"])
    latents = table.column("latent").to_numpy()
    keys = table.column("token").to_numpy().astype(np.int64)
    values = table.column("activation").to_numpy().astype(np.float32)
    found, starts = np.unique(latents, return_index=True)
    ends = [*starts[1:].tolist(), len(latents)]
    return {int(k): (keys[a:b], values[a:b]) for k, a, b in zip(found.tolist(), starts.tolist(), ends)}


def postings_of(index: Index, latents: Sequence[int]) -> dict[int, Postings]:
    """The postings of `latents`, each bucket they fall in read once (through `Index.bulk_bucket`)."""
    empty: Postings = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    per_bucket = index.header.bucket_latents
    out: dict[int, Postings] = {}
    for bucket in sorted({latent // per_bucket for latent in latents}):
        found = index.bulk_bucket(bucket)
        out.update({k: found.get(k, empty) for k in latents if k // per_bucket == bucket})
    return out


class Documents(NamedTuple):
    """Documents read and decoded once for many examples."""

    tokens: dict[int, list[str]]
    """Doc id → its tokens, each decoded on its own."""
    lengths: dict[int, int]
    """Doc id → its number of tokens."""


def decoded_docs(index: Index, centres: Sequence[tuple[int, float]]) -> Documents:
    """Each document the centres fall in, read once and decoded once (token by token)."""
    docs = index.doc_tokens(sorted({int(k) // index.stride for k, _ in centres}))
    tokens = {doc: index.decode(ids.tolist()) for doc, ids in docs.items()}
    return Documents(tokens, {doc: len(t) for doc, t in tokens.items()})


def examples_at(
    index: Index,
    postings: Postings,
    centres: Sequence[tuple[int, float]],
    docs: Documents,
    context: tuple[int, int],
) -> list[Example]:
    """The examples around `centres` in documents already decoded."""
    windows = spans(centres, docs.lengths, index.stride, *context)
    return window_examples(centres, windows, docs.tokens, *postings, index.stride)


def top_rows(index: Index, latents: Sequence[int], n: int) -> dict[int, list[tuple[int, float]]]:
    """Each latent's `n` top (token key, activation) pairs from `top.parquet`."""
    file = index.sorted_file(TOP, "top examples", ["latent", "rank"])
    rows = split_by_latent(
        latent_rows(file, latents, ["latent", "rank", "token", "activation"]), [("rank", "ascending")]
    )
    empty = pa.table({"token": pa.array([], pa.int64()), "activation": pa.array([], pa.float32())})
    out = {}
    for latent in latents:
        found = rows.get(latent, empty).slice(0, n)
        out[latent] = list(zip(found.column("token").to_pylist(), found.column("activation").to_pylist()))
    return out


def top_examples(
    index: Index, latents: Sequence[int], n: int, before: int, after: int
) -> dict[int, list[Example]]:
    """`Index.top_examples` of each latent."""
    postings = postings_of(index, latents)
    kept = int(index.header.settings.get("top_examples", 0))
    if 0 < n <= kept:
        centres = top_rows(index, latents, n)
    else:
        centres = {k: top_centres(*postings[k], n) for k in latents}
    decoded = decoded_docs(index, [c for k in latents for c in centres[k]])
    return {k: examples_at(index, postings[k], centres[k], decoded, (before, after)) for k in latents}


def quantile_examples(
    index: Index,
    latents: Sequence[int],
    quantiles: int,
    per_quantile: int,
    seed: int,
    context: tuple[int, int],
) -> dict[int, list[QuantileExamples]]:
    """`Index.quantile_examples` of each latent (`context`: tokens before and after)."""
    postings = postings_of(index, latents)
    drawn = {k: quantile_centres(*postings[k], k, quantiles, per_quantile, seed) for k in latents}
    decoded = decoded_docs(index, [c for k in latents for group in drawn[k] for c in group.centres])
    return {
        k: [
            QuantileExamples(
                g.quantile, g.low, g.high, examples_at(index, postings[k], g.centres, decoded, context)
            )
            for g in drawn[k]
        ]
        for k in latents
    }


__all__ = [
    "cooccurring",
    "logit_effects",
    "neighbours",
    "quantile_examples",
    "top_examples",
]
