"""Per-latent statistics and top examples, computed from a bucket's postings; `read_latent_table`.

`latents.parquet` holds one row per latent:

    latent      int32     the latent id
    count       int64     tokens where it fires (activation > 0)
    frequency   float64   count / indexed tokens
    max         float32   its largest activation
    mean        float64   its mean activation where it fires (0 when dead)
    q10 … q99   float32   quantiles of its activation where it fires (linear interpolation, as
                          numpy's default; 0 when dead)
    histogram   list<int64>  `HISTOGRAM_BINS` equal-width bins of its activation over (0, max]
    dead        bool      it never fires on the indexed text
    dense       bool      it fires on more than the build's `dense_frequency` of tokens

`top.parquet` holds each latent's largest activations (`latent`, `rank` from 0, `token` key,
`activation`; ties broken by the earlier token). Everything is vectorised over a whole bucket:
no Python loop per latent. This module knows nothing about models, files' layout or queries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .format import LATENTS, read_header
from .postings import Postings, activation_bits, sort_key

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
"""Activation quantiles kept per latent (columns q10, q25, q50, q75, q90, q99)."""
HISTOGRAM_BINS = 20


def quantile_column(q: float) -> str:
    """The column name of quantile `q` (0.5 → q50, 0.99 → q99)."""
    return f"q{round(q * 100):02d}"


def _group_bounds(latent: np.ndarray, lo: int, n_latents: int) -> tuple[np.ndarray, np.ndarray]:
    """Per latent of [lo, lo + n_latents): its count and its first row (postings sorted by latent)."""
    counts = np.bincount(latent - lo, minlength=n_latents).astype(np.int64)
    starts = np.zeros(n_latents, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return counts, starts


def _quantiles(values: np.ndarray, counts: np.ndarray, starts: np.ndarray, q: float) -> np.ndarray:
    """Quantile `q` of each group of `values` (sorted within groups), numpy's linear method."""
    out = np.zeros(len(counts), dtype=np.float64)
    live = counts > 0
    pos = q * (counts[live] - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, counts[live] - 1)
    v0 = values[starts[live] + below]
    v1 = values[starts[live] + above]
    out[live] = v0 + (v1 - v0) * (pos - below)
    return out


def bucket_stats(postings: Postings, lo: int, hi: int, total_tokens: int, dense_frequency: float) -> pa.Table:
    """The statistics rows of latents [lo, hi) from their postings (any order)."""
    n = hi - lo
    order = np.argsort(sort_key(postings.latent - lo, activation_bits(postings.activation)))
    latent = postings.latent[order]
    values = postings.activation[order].astype(np.float64)
    counts, starts = _group_bounds(latent, lo, n)
    live = counts > 0
    maximum = np.zeros(n)
    maximum[live] = values[starts[live] + counts[live] - 1]
    sums = np.bincount(latent - lo, weights=values, minlength=n)
    mean = np.divide(sums, counts, out=np.zeros(n), where=live)
    top = np.repeat(maximum, counts)
    bins = np.minimum(
        (values / np.where(top > 0, top, 1) * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1
    )
    histogram = np.bincount((latent - lo) * HISTOGRAM_BINS + bins, minlength=n * HISTOGRAM_BINS)
    frequency = counts / max(total_tokens, 1)
    columns: dict[str, pa.Array] = {
        "latent": pa.array(np.arange(lo, hi, dtype=np.int32)),
        "count": pa.array(counts),
        "frequency": pa.array(frequency),
        "max": pa.array(maximum.astype(np.float32)),
        "mean": pa.array(mean),
    }
    for q in QUANTILES:
        columns[quantile_column(q)] = pa.array(_quantiles(values, counts, starts, q).astype(np.float32))
    offsets = np.arange(0, (n + 1) * HISTOGRAM_BINS, HISTOGRAM_BINS, dtype=np.int32)
    columns["histogram"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(histogram.astype(np.int64)))
    columns["dead"] = pa.array(counts == 0)
    columns["dense"] = pa.array(frequency > dense_frequency)
    return pa.table(columns)


def top_examples(postings: Postings, n: int) -> pa.Table:
    """Each latent's `n` largest activations (ties: earlier token first) as the `top.parquet` rows.
    `postings` must be sorted by (latent, token): a stable sort by (latent, descending activation)
    then keeps equal activations in token order."""
    descending = (1 << 31) - activation_bits(postings.activation)
    order = np.argsort(sort_key(postings.latent, descending), kind="stable")
    latent = postings.latent[order]
    new = np.ones(len(latent), dtype=bool)
    new[1:] = latent[1:] != latent[:-1]
    group_start = np.maximum.accumulate(np.where(new, np.arange(len(latent)), 0))
    rank = np.arange(len(latent)) - group_start
    keep = rank < n
    return pa.table(
        {
            "latent": pa.array(latent[keep].astype(np.int32)),
            "rank": pa.array(rank[keep].astype(np.int32)),
            "token": pa.array(postings.token[order][keep]),
            "activation": pa.array(postings.activation[order][keep].astype(np.float32)),
        }
    )


def read_latent_table(index_dir: Path | str) -> pa.Table:
    """The per-latent statistics of the index at `index_dir` (`latents.parquet`, one row per latent
    in latent order; columns in the module docstring)."""
    folder = Path(index_dir)
    read_header(folder)
    return pq.read_table(folder / LATENTS)


__all__ = [
    "HISTOGRAM_BINS",
    "QUANTILES",
    "bucket_stats",
    "quantile_column",
    "read_latent_table",
    "top_examples",
]
