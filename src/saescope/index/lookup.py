"""Point reads from sorted Parquet files: a few rows by key, through row-group statistics.

A query for one latent's top examples needs a handful of rows: 20 entries of `top.parquet`, the
latent's postings inside 20 context windows, 20 documents. Every such file is sorted by its key
columns and written in small row groups, so the row groups that can hold a key are known from the
min/max statistics in the file's footer, which `SortedFile` reads once and keeps. Reading just
those row groups with pyarrow takes well under a millisecond each, where a SQL query per lookup
would pay its planning every time; scans and aggregations still go through DuckDB (`reader`).

This module knows nothing about what the files hold beyond their key columns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class SortedFile:
    """One Parquet file sorted by `keys`, with each row group's key ranges in memory."""

    def __init__(self, path: Path, keys: Sequence[str]) -> None:
        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        self._lock = threading.Lock()
        meta = self.file.metadata
        groups = meta.num_row_groups
        self.lows = np.full((len(keys), groups), np.iinfo(np.int64).min, dtype=np.int64)
        self.highs = np.full((len(keys), groups), np.iinfo(np.int64).max, dtype=np.int64)
        for k, name in enumerate(keys):
            column = self.file.schema_arrow.get_field_index(name)
            for g in range(groups):
                stats = meta.row_group(g).column(column).statistics
                if stats is not None and stats.has_min_max:
                    self.lows[k, g], self.highs[k, g] = int(stats.min), int(stats.max)

    @property
    def low(self) -> int:
        """The smallest first key in the file."""
        return int(self.lows[0].min()) if self.lows.shape[1] else 0

    @property
    def high(self) -> int:
        """The largest first key in the file."""
        return int(self.highs[0].max()) if self.highs.shape[1] else -1

    def groups(self, first: int, second: tuple[int, int] | None = None) -> np.ndarray:
        """Row groups that can hold rows whose first key is `first` (and second key in the closed
        range `second`, when given)."""
        fits = (self.lows[0] <= first) & (self.highs[0] >= first)
        if second is not None:
            fits &= (self.lows[1] <= second[1]) & (self.highs[1] >= second[0])
        return np.flatnonzero(fits)

    def groups_between(self, low: int, high: int) -> np.ndarray:
        """Row groups that can hold rows whose first key lies in the closed range [low, high]."""
        return np.flatnonzero((self.lows[0] <= high) & (self.highs[0] >= low))

    def read(self, groups: Sequence[int] | np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Those row groups' `columns` (an empty table when there are none)."""
        if not len(groups):
            return self.file.schema_arrow.empty_table().select(list(columns))
        # one open file: threads (a web server's) take turns; a few small row groups read faster on
        # this thread than handed to pyarrow's pool (several times faster on a busy machine)
        with self._lock:
            return self.file.read_row_groups(
                [int(g) for g in groups], columns=list(columns), use_threads=False
            )


class DocsLookup:
    """The token ids of documents by id, over every docs file of an index."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.files = [SortedFile(p, ["doc_id"]) for p in sorted(paths)]
        self.lows = np.array([f.low for f in self.files], dtype=np.int64)
        self.highs = np.array([f.high for f in self.files], dtype=np.int64)

    def token_ids(self, doc_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Token ids of each of `doc_ids` that the files hold."""
        wanted: dict[int, set[int]] = {}
        for d in {int(d) for d in doc_ids}:
            for f in np.flatnonzero((self.lows <= d) & (self.highs >= d)).tolist():
                wanted.setdefault(f, set()).update(self.files[f].groups(d).tolist())
        found: dict[int, np.ndarray] = {}
        asked = {int(d) for d in doc_ids}
        for f, groups in wanted.items():
            table = self.files[f].read(sorted(groups), ["doc_id", "token_ids"])
            for d, ids in zip(table.column("doc_id").to_pylist(), table.column("token_ids").to_pylist()):
                if d in asked:
                    found[int(d)] = np.asarray(ids, dtype=np.int64)
        return found


__all__ = ["DocsLookup", "SortedFile"]
