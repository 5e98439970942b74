"""Co-occurring latents: how often two latents fire on the same token, as sparse counts.

With A the [tokens × latents] 0/1 matrix of firings, the counts are AᵀA. It is never held dense
(at 131k latents that is 137 GB): A is built sparse for a block of tokens at a time, AᵀA of each
block is a sparse product (scipy), and the blocks' products are summed, so memory grows with the
number of latent pairs that actually co-occur.

A raw count ranks the densest latents first for every latent (they fire with everything), so
partners are measured by ratios to their own firings, both defined here for the build and the
queries alike, with a = the latent's firings, b = the partner's, s = the tokens both fire on, N
the indexed tokens:

    jaccard   s / (a + b − s)        in [0, 1]: 1 when they fire on exactly the same tokens
    lift      s · N / (a · b)        how many times more often they fire together than if they
                                     were independent (1: independent)

Only pairs sharing at least `MIN_SHARED` tokens are kept (two latents firing once, on the same
token, would have Jaccard 1 and lift N), and of those each latent's `n` best by Jaccard and its
`n` best by lift (`cooccurrence.parquet`: `latent`, `other`, `count`, by Jaccard, ties by the
lower id), so that either ranking of up to `n` partners is exact.

This module knows nothing about models, the index's folders or queries.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
from scipy import sparse

BLOCK_NONZEROS = 1 << 24
"""Postings gathered before one sparse product (about 16.8M: a few hundred MB of scratch)."""
MIN_SHARED = 10
"""Tokens two latents must fire on together before their co-occurrence is kept and ranked."""
PARTNER_METRICS = ("jaccard", "lift")
"""What co-occurring latents are ranked by (module docstring)."""


def jaccard(shared: np.ndarray, own: np.ndarray | int, other: np.ndarray) -> np.ndarray:
    """s / (a + b − s) (module docstring); 0 where neither fires."""
    union = np.asarray(own + other - shared, dtype=np.float64)
    return np.divide(shared, union, out=np.zeros(union.shape), where=union > 0)


def lift(shared: np.ndarray, own: np.ndarray | int, other: np.ndarray, tokens: int) -> np.ndarray:
    """s · N / (a · b) (module docstring); 0 where either never fires."""
    product = np.asarray(own * other, dtype=np.float64)
    return np.divide(
        np.asarray(shared, dtype=np.float64) * tokens, product, out=np.zeros(product.shape), where=product > 0
    )


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


def best(values: np.ndarray, others: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` largest `values` (ties: lower `others` first)."""
    return np.lexsort((others, -values))[:n]


def top_partners(counts: sparse.csr_matrix, n: int, min_shared: int = MIN_SHARED) -> pa.Table:
    """Each latent's partners sharing at least `min_shared` tokens (itself excluded): its `n` best
    by Jaccard and its `n` best by lift, as `cooccurrence.parquet` rows (module docstring)."""
    counts = counts.tocsr()
    own = counts.diagonal().astype(np.int64)
    latent_parts, other_parts, count_parts = [], [], []
    for i in range(counts.shape[0]):
        a, b = counts.indptr[i], counts.indptr[i + 1]
        others, values = counts.indices[a:b], counts.data[a:b].astype(np.int64)
        keep = (others != i) & (values >= max(min_shared, 1))
        others, values = others[keep], values[keep]
        by_jaccard = jaccard(values, own[i], own[others])
        # lift of one latent's partners orders as s / b: N and a are the same for all of them
        chosen = np.union1d(best(by_jaccard, others, n), best(values / own[others], others, n))
        order = chosen[best(by_jaccard[chosen], others[chosen], len(chosen))]
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


__all__ = [
    "BLOCK_NONZEROS",
    "MIN_SHARED",
    "PARTNER_METRICS",
    "block_counts",
    "cooccurrence_counts",
    "jaccard",
    "lift",
    "top_partners",
]
