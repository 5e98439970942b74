"""Sentences and documents as units of an index: scoring them by latents, and search.

A unit is a token, a sentence (see `sentences`: token-level punctuation) or a document (a model
input: for a corpus packed into fixed-length windows, a window of packed documents, and labelled
so — `unit_label`). A latent scores a unit by aggregating its activations over the unit's indexed
tokens:

    max    the largest activation in the unit
    mean   the sum of its activations / the unit's indexed tokens (inactive tokens count as 0)
    last   its activation on the unit's last token

`last` is measured only where the unit's last token is known and indexed: a sentence's last token
is the one its next sentence starts after, or, for the last sentence of a model input, the input's
last token when a sentence ends there. A sentence cut off by the end of its window has no last
token in it (its end lies in the next window), and neither has a unit whose last token was not
indexed (a sampled index, the input the index stopped in): those units get no `last` score.

Search by feature activations (instead of embeddings) ranks units by a weighted sum of latents'
scores, over the units where at least one of the latents fires. The units' sizes and last tokens
come from the tokens and docs tables, grouped once per `Index` and kept (a few bytes per sentence).
This module knows nothing about how the index was built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..example import Example
from .format import DOCS_DIR, TOKENS_DIR
from .sentences import tokens_end_sentences
from .storage import IndexStorage

UNITS = ("token", "sentence", "document")
AGGREGATIONS = ("max", "mean", "last")


class Units(NamedTuple):
    """The sentences or documents of an index, sorted by key."""

    keys: np.ndarray
    """[u] int64 token key where each unit starts (its first token, indexed or not)."""
    sizes: np.ndarray
    """[u] its indexed tokens."""
    last_indexed: np.ndarray
    """[u] token key of its last indexed token."""
    last: np.ndarray
    """[u] token key of its last token (module docstring), or -1 when that is not known or not
    indexed: the units `last` can score."""


class UnitScores(NamedTuple):
    """Scores of the units where something fires."""

    unit: np.ndarray
    """[m] unit numbers (into `Units`), or token keys for the `token` unit."""
    score: np.ndarray
    """[m] float64 their scores."""


def unit_label(corpus: Mapping[str, Any] | None, unit: str) -> str:
    """What a unit of an index built on `corpus` (the header's corpus settings; None for a store)
    is, in words: a `document` is a model input, which for a packed corpus is a window."""
    if unit != "document":
        return unit
    if corpus is None:
        return "document (a model input of the activation store)"
    n = int(corpus.get("context_len", 0))
    if corpus.get("unit") == "sentence":
        return f"sentence input (one sentence per model input, up to {n} tokens)"
    if corpus.get("substring") is not None or corpus.get("substring_field") is not None:
        return f"document (up to {n} tokens; a longer one is cut into several)"
    return f"window ({n} tokens of packed documents)"


def doc_lengths(storage: IndexStorage) -> dict[int, int]:
    """Doc id → tokens of that model input, for every model input of the index."""
    found = storage.sql(f"SELECT doc_id, len(token_ids) AS n FROM read_parquet({storage.glob(DOCS_DIR)})")
    return dict(zip(found["doc_id"].tolist(), found["n"].tolist()))


def last_tokens(storage: IndexStorage, unit: str, found: dict[str, np.ndarray]) -> np.ndarray:
    """Each unit's last token key, or -1 where it is not known or not indexed (module docstring);
    `found`: the units' `unit` (start key), `last` (last indexed key) and `last_id` (its token)."""
    stride = storage.stride
    starts, indexed = found["unit"].astype(np.int64), found["last"].astype(np.int64)
    docs = starts // stride
    lengths = doc_lengths(storage)
    doc_end = docs * stride + np.array([lengths.get(int(d), 0) for d in docs.tolist()], dtype=np.int64)
    if unit == "document":
        return np.where(indexed == doc_end - 1, indexed, -1)
    same_doc = np.r_[docs[1:] == docs[:-1], False]
    next_start = np.where(same_doc, np.r_[starts[1:], 0], doc_end)
    ended = same_doc.copy()
    at_end = np.flatnonzero(~same_doc & (indexed == doc_end - 1))
    if len(at_end):
        ended[at_end] = tokens_end_sentences(storage.tokenizer, found["last_id"][at_end].tolist())
    return np.where(ended & (indexed == next_start - 1), indexed, -1)


def load_units(storage: IndexStorage, unit: str) -> Units:
    """The index's sentences or documents (`unit`), from its tokens and docs tables."""
    column = "sentence" if unit == "sentence" else f"doc_id * {int(storage.stride)}"
    found = storage.sql(
        f"SELECT {column} AS unit, count(*) AS size, max(token) AS last, arg_max(token_id, token) AS last_id "
        f"FROM read_parquet({storage.glob(TOKENS_DIR)}) GROUP BY unit ORDER BY unit"
    )
    return Units(
        found["unit"].astype(np.int64),
        found["size"].astype(np.int64),
        found["last"].astype(np.int64),
        last_tokens(storage, unit, found),
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


def combined_scores(
    storage: IndexStorage, units: Units | None, weights: Mapping[int, float], agg: str
) -> UnitScores:
    """Σ weight · score over the latents of `weights`, for every unit where one of them fires."""
    parts = [(unit_scores(units, *storage.postings(latent), agg), w) for latent, w in weights.items()]
    ids = np.concatenate([p.unit for p, _ in parts]) if parts else np.zeros(0, np.int64)
    scores = np.concatenate([p.score * w for p, w in parts]) if parts else np.zeros(0)
    present, inverse = np.unique(ids, return_inverse=True)
    return UnitScores(present, np.bincount(inverse.ravel(), weights=scores, minlength=len(present)))


def top_scores(scores: UnitScores, n: int) -> UnitScores:
    """The `n` best (ties: earlier unit first)."""
    order = np.lexsort((scores.unit, -scores.score))[:n]
    return UnitScores(scores.unit[order], scores.score[order])


def combined_activations(
    storage: IndexStorage, weights: Mapping[int, float], doc: int, lo: int, hi: int
) -> np.ndarray:
    """Σ weight · activation of the latents of `weights` on positions [lo, hi) of input `doc`."""
    acts = np.zeros(hi - lo)
    base = doc * storage.stride
    for latent, w in weights.items():
        keys, values = storage.postings(latent)
        a, b = np.searchsorted(keys, [base + lo, base + hi])
        acts[keys[a:b] - base - lo] += w * values[a:b].astype(np.float64)
    return acts


def unit_examples(
    storage: IndexStorage, unit: str, units: Units, best: UnitScores, weights: Mapping[int, float], agg: str
) -> list[Example]:
    """Each sentence (from its first token to its last indexed one) or document (the whole model
    input) with Σ weight · activation on every token; the focus position is the unit's last token
    for `last`, else its most active token."""
    stride = storage.stride
    docs = storage.doc_tokens([int(units.keys[u]) // stride for u in best.unit])
    examples = []
    for u, score in zip(best.unit.tolist(), best.score.tolist()):
        doc, start = divmod(int(units.keys[u]), stride)
        last = int(units.last_indexed[u]) - doc * stride
        end = len(docs[doc]) if unit == "document" else last + 1
        acts = combined_activations(storage, weights, doc, start, end)
        focus = int(units.last[u]) - doc * stride if agg == "last" else start + int(np.argmax(acts))
        tokens = storage.decode(docs[doc][start:end].tolist())
        examples.append(Example(tuple(tokens), tuple(acts.tolist()), doc, focus, float(score), focus - start))
    return examples


def token_examples(
    storage: IndexStorage, best: UnitScores, weights: Mapping[int, float], before: int, after: int
) -> list[Example]:
    """Windows around the best tokens with Σ weight · activation on every token."""
    docs = storage.doc_tokens([int(k) // storage.stride for k in best.unit])
    examples = []
    for key, score in zip(best.unit.tolist(), best.score.tolist()):
        doc, position = divmod(int(key), storage.stride)
        lo, hi = max(0, position - before), min(len(docs[doc]), position + after + 1)
        acts = combined_activations(storage, weights, doc, lo, hi)
        tokens = tuple(storage.decode(docs[doc][lo:hi].tolist()))
        examples.append(Example(tokens, tuple(acts.tolist()), doc, position, float(score), position - lo))
    return examples


def ranked_units(
    storage: IndexStorage,
    unit: str,
    units: Units | None,
    weights: Mapping[int, float],
    n: int,
    agg: str,
    context: tuple[int, int],
) -> list[Example]:
    """The `n` best units by Σ weight · score (see the module docstring), as examples: `units` are
    the `unit`s (None for tokens, shown with `context` tokens before and after)."""
    best = top_scores(combined_scores(storage, units, weights, agg), n)
    if units is None:
        return token_examples(storage, best, weights, *context)
    return unit_examples(storage, unit, units, best, weights, agg)


__all__ = [
    "AGGREGATIONS",
    "UNITS",
    "UnitScores",
    "Units",
    "combined_scores",
    "load_units",
    "ranked_units",
    "top_scores",
    "unit_label",
    "unit_scores",
]
