"""Where an index's latents come from: text run through the model, or the rows of an activation store.

Both yield `CodeBatch`es: tokens with their doc ids, positions and token ids, the documents they
belong to, and each SAE's sparse codes. Which tokens are indexed does not depend on how many ranks
share the work, so an index built by N ranks holds exactly what one process would have built:

- text: the first `tokens` positions of the corpus's model inputs from `start` (the last input is
  cut short to make the count exact); rank r runs the inputs with doc_id % world == r
  (`positions.for_rank`, the rule capture uses). Every rank tokenises the whole prefix, which is
  cheap beside the model.
- store: the first `tokens` rows of the store in its own order; rank r takes a contiguous range of
  them. The SAE encodes stored activations: no model runs.

Each row carries an `order`, increasing along a rank's stream (the doc id for text, the row number
for a store), so a resumed build skips exactly the rows it had committed (`cursor`).
This module knows nothing about how codes are stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..bound import BoundSAE
from ..config import CorpusSettings
from ..data import ModelInput, iter_model_inputs
from ..positions import for_rank, iter_positions
from ..sae.base import SparseAutoencoder
from ..store import ActivationStore, DocRecord

STORE_BATCH_ROWS = 4096
"""Store rows encoded at a time."""


class Codes(NamedTuple):
    """One SAE's sparse codes of a batch's rows (CPU)."""

    acts: Tensor
    """[n, K] activations of the selected latents (0 where a slot is inactive)."""
    indices: Tensor
    """[n, K] their latent ids."""


class CodeBatch(NamedTuple):
    """Rows (tokens) of one step of a source, with every SAE's codes."""

    doc_ids: np.ndarray
    """[n] int64 model input of each row."""
    positions: np.ndarray
    """[n] int32 position of each row in its input."""
    token_ids: np.ndarray
    """[n] int32 token of each row."""
    order: np.ndarray
    """[n] int64 the row's place in its rank's stream (doc id for text, row number for a store)."""
    docs: list[DocRecord]
    """Every document with rows here (its tokens are needed for sentences)."""
    doc_starts: np.ndarray
    """[len(docs)] `order` of each document's first row, or -1 when it started in an earlier batch
    (then another chunk writes its record)."""
    codes: list[Codes]
    """One per SAE, in the order the SAEs were given."""


@torch.inference_mode()
def encode(sae: SparseAutoencoder, x: Tensor) -> Codes:
    """The SAE's sparse codes of activations `x` [n, d] (computed on the SAE's device)."""
    out = sae.encode(x.to(device=sae.W_dec.device, dtype=sae.W_dec.dtype))
    return Codes(out.latent_acts.float().cpu(), out.latent_indices.cpu())


def first_tokens(inputs: Iterable[ModelInput], tokens: int) -> Iterator[ModelInput]:
    """The inputs holding the first `tokens` positions, the last one cut to make the count exact."""
    seen = 0
    for item in inputs:
        if seen >= tokens:
            return
        take = min(len(item.positions), tokens - seen)
        seen += take
        yield (
            item
            if take == len(item.positions)
            else dataclasses.replace(item, positions=item.positions[:take])
        )


def text_batches(
    bounds: Sequence[BoundSAE],
    corpus: CorpusSettings,
    start: int,
    tokens: int,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    cursor: int = 0,
) -> Iterator[CodeBatch]:
    """Codes of the first `tokens` positions of `corpus` from input `start` (this rank's share),
    skipping inputs with doc_id < `cursor`. The SAEs must share one loaded model."""
    loaded = bounds[0].loaded_model
    hookpoints = list({b.hookpoint.name: b.hookpoint for b in bounds}.values())
    planned = first_tokens(iter_model_inputs(corpus, loaded.tokenizer, start), tokens)
    mine = (item for item in for_rank(planned, rank, world_size) if item.doc_id >= cursor)
    for pb in iter_positions(loaded, hookpoints, mine, batch_size):
        doc_ids = pb.doc_ids.numpy()
        docs = [DocRecord(i.doc_id, i.token_ids, i.text, i.source) for i in pb.inputs]
        yield CodeBatch(
            doc_ids,
            pb.positions.numpy(),
            pb.token_ids.numpy(),
            doc_ids,
            docs,
            np.array([i.doc_id for i in pb.inputs], dtype=np.int64),
            [encode(b.sae, pb.activations[b.hookpoint.name]) for b in bounds],
        )


def rank_rows(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous rows [lo, hi) of the first `total` a rank encodes from a store."""
    return total * rank // world_size, total * (rank + 1) // world_size


def _doc_starts(store: ActivationStore, doc_ids: np.ndarray, first_row: int) -> tuple[list[int], np.ndarray]:
    """The distinct docs of a batch in order, and the row of each one's first row (-1 when it
    started before `first_row`)."""
    before = int(store.get([first_row - 1]).doc_ids[0]) if first_row > 0 else None
    new = np.ones(len(doc_ids), dtype=bool)
    new[1:] = doc_ids[1:] != doc_ids[:-1]
    firsts = np.flatnonzero(new)
    starts = firsts.astype(np.int64) + first_row
    if before is not None and doc_ids[0] == before:
        starts[0] = -1
    return [int(d) for d in doc_ids[firsts]], starts


def store_batches(
    store: ActivationStore,
    saes: Sequence[SparseAutoencoder],
    tokens: int,
    rank: int = 0,
    world_size: int = 1,
    cursor: int = 0,
    rows_per_batch: int = STORE_BATCH_ROWS,
) -> Iterator[CodeBatch]:
    """Codes of the store's first `tokens` rows (this rank's range), from row `cursor` on."""
    lo, hi = rank_rows(min(tokens, len(store)), rank, world_size)
    a = max(lo, cursor)
    while a < hi:
        b = min(a + rows_per_batch, hi)
        rows = store.get(np.arange(a, b))
        doc_ids = rows.doc_ids.numpy()
        ids, starts = _doc_starts(store, doc_ids, a)
        yield CodeBatch(
            doc_ids,
            rows.positions.numpy(),
            rows.token_ids.numpy(),
            np.arange(a, b, dtype=np.int64),
            store.docs(ids),
            starts,
            [encode(sae, rows.activations) for sae in saes],
        )
        a = b


__all__ = [
    "STORE_BATCH_ROWS",
    "CodeBatch",
    "Codes",
    "encode",
    "first_tokens",
    "rank_rows",
    "store_batches",
    "text_batches",
]
