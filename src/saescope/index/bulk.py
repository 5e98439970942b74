"""Answers for many latents at once: each table read once for a run of latents, not once per latent.

A dashboard asks the same questions of every latent. One latent at a time, that costs a SQL query
per relation and a few Parquet reads per example list (~11 index calls a page). Here each
per-latent table (`top`, `cooccurrence`, `neighbours`, `logits`, all sorted by latent) is read once
for the whole run of latents asked — only the row groups whose latent range overlaps it —, each
postings bucket once (the last one read stays in memory: top and quantile examples of a bucket's
latents share it), the documents the examples come from once, each decoded once; then the rows are
cut per latent. Memory follows the latents asked: a dashboard asks a bucket or a few at a time.

The answers equal the per-latent methods' of `Index` (same order, ties, values): examples are
picked and cut by the same `windows` functions as `examples`, and `Index` answers the relations
of one latent with these functions, asked for that latent alone.

This module knows nothing about pages, HTML or how the index was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..example import Example
from .cooccurrence import MIN_SHARED, PARTNER_METRICS, jaccard, lift
from .format import COOCCURRENCE, LOGITS, NEIGHBOURS, TOP, IndexHeader, LatentIndexError
from .lookup import SortedFile
from .results import Cooccurrence, LogitEffects, Neighbour, QuantileExamples, TokenEffect
from .storage import IndexStorage, Postings
from .windows import quantile_centres, spans, top_centres, window_examples


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


def partner_record(header: IndexHeader) -> dict[str, Any]:
    """How the index kept co-occurring partners (`summary.cooccurrence`): `min_shared`, `kept`
    (per metric) and `by` (the metrics kept for; ["count"] for an index built before partners were
    kept by Jaccard and lift: it kept each latent's most frequent partners only)."""
    found = header.summary.get("cooccurrence")
    if isinstance(found, dict):
        return found
    return {"min_shared": 1, "kept": int(header.settings.get("related", 0)), "by": ["count"]}


def partner_minimum(header: IndexHeader) -> int:
    """Indexed tokens a co-occurring partner must share: what the index kept, and at least
    `MIN_SHARED` (an older index kept pairs sharing a single token)."""
    return max(int(partner_record(header).get("min_shared", MIN_SHARED)), MIN_SHARED)


def cooccurring(
    storage: IndexStorage, latents: Sequence[int], n: int, by: str = "jaccard"
) -> dict[int, list[Cooccurrence]]:
    """`Index.cooccurring` of each latent: its `n` partners sharing at least the kept minimum of
    tokens, by Jaccard or lift (ties: lower id; see `cooccurrence`)."""
    if by not in PARTNER_METRICS:
        raise LatentIndexError(
            f"unknown co-occurrence ranking {by!r}; choose from {', '.join(PARTNER_METRICS)}"
        )
    file = storage.sorted_file(COOCCURRENCE, "co-occurring latents", ["latent"])
    rows = split_by_latent(latent_rows(file, latents, ["latent", "other", "count"]), [("other", "ascending")])
    stats = storage.stats()
    counts = stats.column("count").to_numpy()
    dense = stats.column("dense").to_numpy(zero_copy_only=False)
    least = partner_minimum(storage.header)
    empty = pa.table({"other": pa.array([], pa.int32()), "count": pa.array([], pa.int64())})
    out: dict[int, list[Cooccurrence]] = {}
    for latent in latents:
        found = rows.get(latent, empty)
        others = found.column("other").to_numpy().astype(np.int64)
        shared = found.column("count").to_numpy().astype(np.int64)
        keep = shared >= least
        others, shared = others[keep], shared[keep]
        by_jaccard = jaccard(shared, counts[latent], counts[others])
        lifts = lift(shared, counts[latent], counts[others], storage.tokens)
        # lift orders one latent's partners as s / b (see `cooccurrence.top_partners`)
        key = by_jaccard if by == "jaccard" else shared / np.maximum(counts[others], 1)
        order = np.lexsort((others, -key))[:n]
        out[latent] = [
            Cooccurrence(
                int(others[i]), int(shared[i]), float(by_jaccard[i]), float(lifts[i]), bool(dense[others[i]])
            )
            for i in order.tolist()
        ]
    return out


def neighbours(storage: IndexStorage, latents: Sequence[int], n: int) -> dict[int, list[Neighbour]]:
    """`Index.neighbours` of each latent (by cosine, ties: lower id)."""
    file = storage.sorted_file(NEIGHBOURS, "decoder neighbours", ["latent"])
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


def logit_effects(storage: IndexStorage, latents: Sequence[int], n: int) -> dict[int, LogitEffects]:
    """`Index.logit_effects` of each latent (rank < n, by side and rank)."""
    if storage.header.summary.get("logits") is False:
        raise LatentIndexError(
            f"{storage.path} has no logit effects: the model could not be loaded when it was built"
        )
    table = latent_rows(
        storage.sorted_file(LOGITS, "logit effects", ["latent"]),
        latents,
        ["latent", "side", "rank", "token_id", "effect"],
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
                found.column("side").to_pylist(), ids, storage.decode(ids), found.column("effect").to_pylist()
            ):
                sides[str(side)].append(TokenEffect(int(token_id), token, float(effect)))
        out[latent] = LogitEffects(sides["top"], sides["bottom"])
    return out


# ----- examples ------------------------------------------------------------------------------
def postings_of(storage: IndexStorage, latents: Sequence[int]) -> dict[int, Postings]:
    """The postings of `latents`, each bucket they fall in read once (`IndexStorage.bulk_bucket`)."""
    empty: Postings = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    per_bucket = storage.header.bucket_latents
    out: dict[int, Postings] = {}
    for bucket in sorted({latent // per_bucket for latent in latents}):
        found = storage.bulk_bucket(bucket)
        out.update({k: found.get(k, empty) for k in latents if k // per_bucket == bucket})
    return out


class Documents(NamedTuple):
    """Documents read and decoded once for many examples."""

    tokens: dict[int, list[str]]
    """Doc id → its tokens, each decoded on its own."""
    lengths: dict[int, int]
    """Doc id → its number of tokens."""


def decoded_docs(storage: IndexStorage, centres: Sequence[tuple[int, float]]) -> Documents:
    """Each document the centres fall in, read once and decoded once (token by token)."""
    docs = storage.doc_tokens(sorted({int(k) // storage.stride for k, _ in centres}))
    tokens = {doc: storage.decode(ids.tolist()) for doc, ids in docs.items()}
    return Documents(tokens, {doc: len(t) for doc, t in tokens.items()})


def examples_at(
    stride: int,
    postings: Postings,
    centres: Sequence[tuple[int, float]],
    docs: Documents,
    context: tuple[int, int],
) -> list[Example]:
    """The examples around `centres` in documents already decoded (token key = doc · `stride` + position)."""
    windows = spans(centres, docs.lengths, stride, *context)
    return window_examples(centres, windows, docs.tokens, *postings, stride)


def top_rows(storage: IndexStorage, latents: Sequence[int], n: int) -> dict[int, list[tuple[int, float]]]:
    """Each latent's `n` top (token key, activation) pairs from `top.parquet`."""
    file = storage.sorted_file(TOP, "top examples", ["latent", "rank"])
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
    storage: IndexStorage, latents: Sequence[int], n: int, before: int, after: int
) -> dict[int, list[Example]]:
    """`Index.top_examples` of each latent."""
    postings = postings_of(storage, latents)
    kept = int(storage.header.settings.get("top_examples", 0))
    if 0 < n <= kept:
        centres = top_rows(storage, latents, n)
    else:
        centres = {k: top_centres(*postings[k], n) for k in latents}
    decoded = decoded_docs(storage, [c for k in latents for c in centres[k]])
    stride = storage.stride
    return {k: examples_at(stride, postings[k], centres[k], decoded, (before, after)) for k in latents}


def quantile_examples(
    storage: IndexStorage,
    latents: Sequence[int],
    quantiles: int,
    per_quantile: int,
    seed: int,
    context: tuple[int, int],
) -> dict[int, list[QuantileExamples]]:
    """`Index.quantile_examples` of each latent (`context`: tokens before and after)."""
    postings = postings_of(storage, latents)
    drawn = {k: quantile_centres(*postings[k], k, quantiles, per_quantile, seed) for k in latents}
    decoded = decoded_docs(storage, [c for k in latents for group in drawn[k] for c in group.centres])
    stride = storage.stride
    return {
        k: [
            QuantileExamples(
                g.quantile, g.low, g.high, examples_at(stride, postings[k], g.centres, decoded, context)
            )
            for g in drawn[k]
        ]
        for k in latents
    }


__all__ = [
    "cooccurring",
    "logit_effects",
    "neighbours",
    "partner_minimum",
    "partner_record",
    "quantile_examples",
    "top_examples",
]
