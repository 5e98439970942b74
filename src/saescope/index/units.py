"""Sentences and documents as units of an index: scoring them by latents, and search.

A unit is a token, a sentence (see `sentences`: token-level punctuation) or a document (a model
input). A latent scores a unit by aggregating its activations over the unit's indexed tokens:

    max    the largest activation in the unit
    mean   the sum of its activations / the unit's indexed tokens (inactive tokens count as 0)
    last   its activation on the unit's last indexed token

Search by feature activations (instead of embeddings) ranks units by a weighted sum of latents'
scores, over the units where at least one of the latents fires. The units' sizes and last tokens
come from the tokens table, grouped once per `Index` and kept (a few bytes per sentence).
This module knows nothing about how the index was built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .format import TOKENS_DIR
from .results import Example

if TYPE_CHECKING:
    from .reader import Index

UNITS = ("token", "sentence", "document")
AGGREGATIONS = ("max", "mean", "last")


class Units(NamedTuple):
    """The sentences or documents of an index, sorted by key."""

    keys: np.ndarray
    """[u] int64 token key where each unit starts (its first token, indexed or not)."""
    sizes: np.ndarray
    """[u] its indexed tokens."""
    last: np.ndarray
    """[u] token key of its last indexed token."""


class UnitScores(NamedTuple):
    """Scores of the units where something fires."""

    unit: np.ndarray
    """[m] unit numbers (into `Units`), or token keys for the `token` unit."""
    score: np.ndarray
    """[m] float64 their scores."""


def load_units(index: Index, unit: str) -> Units:
    """The index's sentences or documents (`unit`), from its tokens table."""
    column = "sentence" if unit == "sentence" else f"doc_id * {int(index.stride)}"
    found = index.sql(
        f"SELECT {column} AS unit, count(*) AS size, max(token) AS last "
        f"FROM read_parquet({index.glob(TOKENS_DIR)}) GROUP BY unit ORDER BY unit"
    )
    return Units(
        found["unit"].astype(np.int64), found["size"].astype(np.int64), found["last"].astype(np.int64)
    )


def unit_scores(units: Units | None, keys: np.ndarray, values: np.ndarray, agg: str) -> UnitScores:
    """Score the units by one latent's postings (`keys` ascending, `values`) with `agg`."""
    values = values.astype(np.float64)
    if units is None:  # token units: a token's score is its activation
        return UnitScores(keys, values)
    which = np.searchsorted(units.keys, keys, side="right") - 1
    if agg == "last":
        on_last = keys == units.last[which]
        return UnitScores(which[on_last], values[on_last])
    present, starts = np.unique(which, return_index=True)
    if agg == "max":
        return UnitScores(present, np.maximum.reduceat(values, starts) if len(values) else values)
    sums = np.add.reduceat(values, starts) if len(values) else values
    return UnitScores(present, sums / units.sizes[present])


def combined_scores(index: Index, units: Units | None, weights: Mapping[int, float], agg: str) -> UnitScores:
    """Σ weight · score over the latents of `weights`, for every unit where one of them fires."""
    parts = [(unit_scores(units, *index.postings(latent), agg), w) for latent, w in weights.items()]
    ids = np.concatenate([p.unit for p, _ in parts]) if parts else np.zeros(0, np.int64)
    scores = np.concatenate([p.score * w for p, w in parts]) if parts else np.zeros(0)
    present, inverse = np.unique(ids, return_inverse=True)
    return UnitScores(present, np.bincount(inverse.ravel(), weights=scores, minlength=len(present)))


def top_scores(scores: UnitScores, n: int) -> UnitScores:
    """The `n` best (ties: earlier unit first)."""
    order = np.lexsort((scores.unit, -scores.score))[:n]
    return UnitScores(scores.unit[order], scores.score[order])


def combined_activations(
    index: Index, weights: Mapping[int, float], doc: int, lo: int, hi: int
) -> np.ndarray:
    """Σ weight · activation of the latents of `weights` on positions [lo, hi) of input `doc`."""
    acts = np.zeros(hi - lo)
    base = doc * index.stride
    for latent, w in weights.items():
        keys, values = index.postings(latent)
        a, b = np.searchsorted(keys, [base + lo, base + hi])
        acts[keys[a:b] - base - lo] += w * values[a:b].astype(np.float64)
    return acts


def unit_examples(
    index: Index, unit: str, units: Units, best: UnitScores, weights: Mapping[int, float], agg: str
) -> list[Example]:
    """Each sentence (from its first token to its last indexed one) or document (the whole model
    input) with Σ weight · activation on every token; the focus position is the unit's last
    indexed token for `last`, else its most active token."""
    docs = index.doc_tokens([int(units.keys[u]) // index.stride for u in best.unit])
    examples = []
    for u, score in zip(best.unit.tolist(), best.score.tolist()):
        doc, start = divmod(int(units.keys[u]), index.stride)
        last = int(units.last[u]) - doc * index.stride
        end = len(docs[doc]) if unit == "document" else last + 1
        acts = combined_activations(index, weights, doc, start, end)
        focus = last if agg == "last" else start + int(np.argmax(acts))
        tokens = index.decode(docs[doc][start:end].tolist())
        examples.append(Example(doc, focus, float(score), tokens, acts.tolist()))
    return examples


def token_examples(
    index: Index, best: UnitScores, weights: Mapping[int, float], before: int, after: int
) -> list[Example]:
    """Windows around the best tokens with Σ weight · activation on every token."""
    docs = index.doc_tokens([int(k) // index.stride for k in best.unit])
    examples = []
    for key, score in zip(best.unit.tolist(), best.score.tolist()):
        doc, position = divmod(int(key), index.stride)
        lo, hi = max(0, position - before), min(len(docs[doc]), position + after + 1)
        acts = combined_activations(index, weights, doc, lo, hi)
        examples.append(
            Example(doc, position, float(score), index.decode(docs[doc][lo:hi].tolist()), acts.tolist())
        )
    return examples


def ranked_units(
    index: Index, weights: Mapping[int, float], n: int, unit: str, agg: str, before: int, after: int
) -> list[Example]:
    """The `n` best units by Σ weight · score (see the module docstring), as examples."""
    units = None if unit == "token" else index.units(unit)
    best = top_scores(combined_scores(index, units, weights, agg), n)
    if units is None:
        return token_examples(index, best, weights, before, after)
    return unit_examples(index, unit, units, best, weights, agg)


__all__ = [
    "AGGREGATIONS",
    "UNITS",
    "UnitScores",
    "Units",
    "combined_scores",
    "load_units",
    "ranked_units",
    "top_scores",
    "unit_scores",
]
