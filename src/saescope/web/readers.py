"""A few `Index` instances over one latent index, each used by one request at a time.

An `Index` serialises its queries on its own DuckDB connection, so one instance shared by every
request thread answers one query at a time however many cores wait. Several instances (one per
core, by default) answer several latent pages at once; they share one tokenizer, which only
decodes here. A request borrows an instance for the duration of its queries (`borrow`).

This module knows nothing about HTTP or what the queries are.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..index import Index

MAX_READERS = 4
"""More instances than this gain nothing on a laptop and hold more cached postings."""


def default_readers() -> int:
    """One instance per CPU core, between 1 and `MAX_READERS`."""
    return max(1, min(MAX_READERS, os.cpu_count() or 1))


class IndexReaders:
    """`size` instances of the index at `path` (see the module docstring)."""

    def __init__(self, primary: Index, size: int) -> None:
        self.primary = primary
        self._free: queue.Queue[Index] = queue.Queue()
        self._free.put(primary)
        for _ in range(size - 1):
            self._free.put(Index(Path(primary.path), tokenizer=primary.tokenizer))

    @contextmanager
    def borrow(self) -> Iterator[Index]:
        """An instance for this block only (waits while every instance is in use)."""
        index = self._free.get()
        try:
            yield index
        finally:
            self._free.put(index)


__all__ = ["MAX_READERS", "IndexReaders", "default_readers"]
