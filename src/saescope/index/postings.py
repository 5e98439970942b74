"""Parquet tables of the index: postings (latent, token, activation) and tokens, in bytes and back.

Postings are sorted by (latent, token): the latent column is then long runs (stored in almost
nothing) and the token keys of one latent grow by small steps (DELTA_BINARY_PACKED, about a byte
each); activations are float16 (2 bytes before zstd) unless the index keeps float32. A chunk's
postings file has one row group per latent bucket, so the final compaction of a bucket reads one
row group of each chunk; a bucket's final file has small row groups, whose min/max statistics let
DuckDB skip everything but the latent asked for.

This module knows nothing about models, SAEs or the index's folder layout.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 8_192
"""Rows per row group of a bucket's final postings (a rare latent's top-k reads about this many)."""
FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16_TINY = float(np.finfo(np.float16).smallest_subnormal)

_OPTIONS = {"compression": "zstd", "use_dictionary": False, "write_statistics": True}


class Postings(NamedTuple):
    """Postings as parallel arrays (one entry per active (token, latent))."""

    latent: np.ndarray
    """[n] int32 latent ids."""
    token: np.ndarray
    """[n] int64 token keys."""
    activation: np.ndarray
    """[n] activations (float16 or float32, all > 0)."""

    def __len__(self) -> int:
        return len(self.latent)

    def sorted(self) -> Postings:
        """The postings sorted by (latent, token)."""
        return self.take(np.argsort(sort_key(self.latent, self.token)))

    def take(self, rows: np.ndarray | slice) -> Postings:
        return Postings(self.latent[rows], self.token[rows], self.activation[rows])

    @classmethod
    def concat(cls, parts: Sequence[Postings], value_dtype: np.dtype) -> Postings:
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, value_dtype))
        return cls(*(np.concatenate(columns) for columns in zip(*parts)))


TOKEN_BITS = 40
"""Token keys below 2^40 (a trillion) share one int64 sort key with their latent (below 2^23)."""


def sort_key(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """One int64 per entry ordering entries by (major, minor): a single quicksort over it is several
    times faster than `np.lexsort` over both. `minor` must be non-negative and below 2^40; keys of
    distinct (major, minor) pairs are distinct."""
    minor = np.asarray(minor, dtype=np.int64)
    if len(minor) and (int(minor.max()) >> TOKEN_BITS or int(np.max(major)) >> (62 - TOKEN_BITS)):
        raise ValueError("sort key out of range: token keys must stay below 2^40 and latents below 2^22")
    return (np.asarray(major, dtype=np.int64) << TOKEN_BITS) | minor


def activation_bits(values: np.ndarray) -> np.ndarray:
    """Non-negative activations as int64 that order as the values do (float32 bit patterns)."""
    return np.asarray(values, dtype=np.float32).view(np.int32).astype(np.int64)


def as_stored(values: np.ndarray, dtype: str) -> np.ndarray:
    """Activations as the index stores them. float16 keeps every value positive (a value below the
    smallest float16 becomes that smallest value, not 0) and finite (clipped at 65504, logged)."""
    if dtype == "float32":
        return np.asarray(values, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    if values.size and float(values.max()) > FLOAT16_MAX:
        log.warning("activations above %g clipped to it in float16 (use --values float32)", FLOAT16_MAX)
    return np.clip(values, FLOAT16_TINY, FLOAT16_MAX).astype(np.float16)


def postings_table(postings: Postings) -> pa.Table:
    """The Parquet table of `postings` (in their order)."""
    return pa.table(
        {
            "latent": pa.array(postings.latent, type=pa.int32()),
            "token": pa.array(postings.token, type=pa.int64()),
            "activation": pa.array(postings.activation),
        }
    )


def _write(table: pa.Table, sink: pa.NativeFile, row_groups: Sequence[tuple[int, int]]) -> None:
    encodings = {"latent": "DELTA_BINARY_PACKED", "token": "DELTA_BINARY_PACKED"}
    with pq.ParquetWriter(sink, table.schema, column_encoding=encodings, **_OPTIONS) as writer:
        for a, b in row_groups:
            writer.write_table(table.slice(a, b - a), row_group_size=max(b - a, 1))


def chunk_postings_bytes(postings: Postings, bucket_latents: int) -> memoryview:
    """A chunk's postings (sorted) as Parquet bytes, one row group per non-empty bucket."""
    edges = np.flatnonzero(np.diff(postings.latent // bucket_latents)) + 1
    bounds = [0, *edges.tolist(), len(postings)]
    groups = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    sink = pa.BufferOutputStream()
    _write(postings_table(postings), sink, groups or [(0, 0)])
    return memoryview(sink.getvalue())


def bucket_postings_bytes(postings: Postings) -> memoryview:
    """A bucket's final postings (sorted) as Parquet bytes, in row groups of `ROW_GROUP_ROWS`."""
    n = len(postings)
    groups = [(a, min(a + ROW_GROUP_ROWS, n)) for a in range(0, n, ROW_GROUP_ROWS)]
    sink = pa.BufferOutputStream()
    _write(postings_table(postings), sink, groups or [(0, 0)])
    return memoryview(sink.getvalue())


def read_latent_range(path: Path, lo: int, hi: int) -> Postings:
    """The postings of latents [lo, hi) in a postings file (only overlapping row groups are read)."""
    f = pq.ParquetFile(path)
    column = f.schema_arrow.get_field_index("latent")
    wanted = []
    for i in range(f.metadata.num_row_groups):
        stats = f.metadata.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max or (stats.min < hi and stats.max >= lo):
            wanted.append(i)
    table = f.read_row_groups(wanted) if wanted else f.schema_arrow.empty_table()
    latent = table.column("latent").to_numpy()
    keep = (latent >= lo) & (latent < hi)
    return Postings(
        latent[keep].astype(np.int32, copy=False),
        table.column("token").to_numpy()[keep],
        table.column("activation").to_numpy()[keep],
    )


class TokenRows(NamedTuple):
    """Indexed tokens as parallel arrays (one entry per token)."""

    token: np.ndarray
    """[n] int64 token keys."""
    doc_id: np.ndarray
    """[n] int64 model input."""
    position: np.ndarray
    """[n] int32 position in it."""
    token_id: np.ndarray
    """[n] int32 the token."""
    sentence: np.ndarray
    """[n] int64 token key of the first token of its sentence."""


def tokens_bytes(rows: TokenRows) -> memoryview:
    """The tokens table of a chunk as Parquet bytes (in the rows' order)."""
    table = pa.table(
        {
            "token": pa.array(rows.token, type=pa.int64()),
            "doc_id": pa.array(rows.doc_id, type=pa.int64()),
            "position": pa.array(rows.position, type=pa.int32()),
            "token_id": pa.array(rows.token_id, type=pa.int32()),
            "sentence": pa.array(rows.sentence, type=pa.int64()),
        }
    )
    encodings = {name: "DELTA_BINARY_PACKED" for name in ("token", "doc_id", "position", "sentence")}
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, column_encoding=encodings, row_group_size=ROW_GROUP_ROWS * 4, **_OPTIONS)
    return memoryview(sink.getvalue())


__all__ = [
    "FLOAT16_MAX",
    "ROW_GROUP_ROWS",
    "Postings",
    "TokenRows",
    "as_stored",
    "bucket_postings_bytes",
    "chunk_postings_bytes",
    "postings_table",
    "read_latent_range",
    "tokens_bytes",
]
