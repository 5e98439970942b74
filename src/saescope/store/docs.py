"""The docs table: the model inputs behind stored rows, so that any row can be shown in context.

One Parquet file holds one row per model input ("doc"):

    doc_id     int64          id of the model input (rows and postings carry it)
    token_ids  list<int32>    the whole input's token ids (positions index into it)
    text       string         the input decoded as text
    source     string         where it came from (dataset, file, record)

The activation store writes one such file per shard (`docs/docs-r{r}-{i:05d}.parquet`) and the
latent index one per chunk; both read them back through `DocsTable`. Any Parquet reader
(DuckDB, Polars, Spark) reads them too.

This module knows nothing about activations, shards, manifests or indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreError


class DocRecord(NamedTuple):
    """A model input whose rows are in the store, so any row can be shown in context."""

    doc_id: int
    """Id of the model input (unique across the store; rows carry it in `doc_ids`)."""
    token_ids: Sequence[int]
    """The whole input's token ids (`positions` index into it)."""
    text: str
    """The input decoded as text (or the source text it was cut from)."""
    source: str
    """Where it came from (dataset name, file, record id)."""


DOCS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.int64()),
        pa.field("token_ids", pa.list_(pa.int32())),
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
    ]
)
"""Columns of every docs table."""


def docs_table(docs: Sequence[DocRecord]) -> pa.Table:
    """The docs table of `docs`, in the order given."""
    tokens = [np.asarray(d.token_ids, dtype=np.int32) for d in docs]
    offsets = np.zeros(len(tokens) + 1, dtype=np.int32)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    values = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int32)
    return pa.table(
        {
            "doc_id": pa.array([int(d.doc_id) for d in docs], type=pa.int64()),
            "token_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int32())),
            "text": pa.array([str(d.text) for d in docs], type=pa.string()),
            "source": pa.array([str(d.source) for d in docs], type=pa.string()),
        },
        schema=DOCS_SCHEMA,
    )


def docs_parquet(docs: Sequence[DocRecord], row_group_docs: int | None = None) -> memoryview:
    """The docs table of `docs` as the bytes of a Parquet file (for `files.write_temp`), in row
    groups of `row_group_docs` documents (one row group when None): small row groups let a reader
    fetch a few documents by id without reading the whole file."""
    sink = pa.BufferOutputStream()
    pq.write_table(docs_table(docs), sink, row_group_size=row_group_docs)
    return memoryview(sink.getvalue())


class DocsTable:
    """One docs file, read whole, with lookup by doc id."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._row = {int(d): i for i, d in enumerate(table.column("doc_id").to_pylist())}

    @classmethod
    def read(cls, path: Path) -> DocsTable:
        """Read the docs file at `path` (a `StoreError` naming it when it is unreadable)."""
        try:
            return cls(pq.read_table(path, schema=DOCS_SCHEMA))
        except (OSError, ValueError, pa.ArrowException) as e:
            raise StoreError(f"docs table {path} is unreadable ({e})") from e

    @property
    def doc_ids(self) -> list[int]:
        """The doc ids in the file, in file order."""
        return list(self._row)

    def get(self, doc_id: int) -> DocRecord | None:
        """The doc with this id, or None when the file does not hold it."""
        i = self._row.get(int(doc_id))
        if i is None:
            return None
        row = self.table.slice(i, 1).to_pylist()[0]
        return DocRecord(int(row["doc_id"]), list(row["token_ids"]), str(row["text"]), str(row["source"]))


__all__ = ["DOCS_SCHEMA", "DocRecord", "DocsTable", "docs_parquet", "docs_table"]
