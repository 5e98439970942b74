"""Co-occurring latents: how often two latents fire on the same token, as sparse counts.

With A the [tokens × latents] 0/1 matrix of firings, the counts are AᵀA. It is never held dense
(at 131k latents that is 137 GB): A is built sparse for a block of tokens at a time, AᵀA of each
block is a sparse product (scipy), and the blocks' products are summed, so memory grows with the
number of latent pairs that actually co-occur. Only each latent's `n` most frequent partners are
kept (`cooccurrence.parquet`: `latent`, `other`, `count`, ranked by count, ties by the lower id).

This module knows nothing about models, the index's folders or queries.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
from scipy import sparse

BLOCK_NONZEROS = 1 << 24
"""Postings gathered before one sparse product (about 16.8M: a few hundred MB of scratch)."""


def block_counts(latents: np.ndarray, tokens: np.ndarray, d_sae: int) -> sparse.csr_matrix:
    """AᵀA of one block of postings (`latents[i]` fires on token key `tokens[i]`). Token keys are
    used as column numbers as they are (offset to start at 0): a key no posting names is an empty
    column, which costs the product nothing."""
    if not len(latents):
        return sparse.csr_matrix((d_sae, d_sae), dtype=np.int64)
    base = int(tokens.min())
    columns = (tokens - base).astype(np.int64)
    ones = np.ones(len(latents), dtype=np.int32)
    at = sparse.csr_matrix((ones, (latents.astype(np.int64), columns)), shape=(d_sae, int(columns.max()) + 1))
    product: sparse.csr_matrix = (at @ at.T).tocsr().astype(np.int64)
    return product


def _pending_counts(pending: list[tuple[np.ndarray, np.ndarray]], d_sae: int) -> sparse.csr_matrix:
    latents = np.concatenate([p[0] for p in pending])
    tokens = np.concatenate([p[1] for p in pending])
    return block_counts(latents, tokens, d_sae)


def cooccurrence_counts(blocks: Iterable[tuple[np.ndarray, np.ndarray]], d_sae: int) -> sparse.csr_matrix:
    """AᵀA summed over blocks of (latents, token keys); each token's postings must lie in one block.
    The diagonal holds each latent's own firing count."""
    total = sparse.csr_matrix((d_sae, d_sae), dtype=np.int64)
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    size = 0
    for latents, tokens in blocks:
        pending.append((latents, tokens))
        size += len(latents)
        if size >= BLOCK_NONZEROS:
            total = total + _pending_counts(pending, d_sae)
            pending, size = [], 0
    if pending:
        total = total + _pending_counts(pending, d_sae)
    return total.tocsr()


def top_partners(counts: sparse.csr_matrix, n: int) -> pa.Table:
    """Each latent's `n` most frequent partners (itself excluded) as `cooccurrence.parquet` rows."""
    counts = counts.tocsr()
    latent_parts, other_parts, count_parts = [], [], []
    for i in range(counts.shape[0]):
        a, b = counts.indptr[i], counts.indptr[i + 1]
        others, values = counts.indices[a:b], counts.data[a:b]
        keep = (others != i) & (values > 0)
        others, values = others[keep], values[keep]
        order = np.lexsort((others, -values))[:n]
        latent_parts.append(np.full(len(order), i, dtype=np.int32))
        other_parts.append(others[order].astype(np.int32))
        count_parts.append(values[order].astype(np.int64))
    return pa.table(
        {
            "latent": pa.array(np.concatenate(latent_parts) if latent_parts else np.zeros(0, np.int32)),
            "other": pa.array(np.concatenate(other_parts) if other_parts else np.zeros(0, np.int32)),
            "count": pa.array(np.concatenate(count_parts) if count_parts else np.zeros(0, np.int64)),
        }
    )


__all__ = ["BLOCK_NONZEROS", "block_counts", "cooccurrence_counts", "top_partners"]
