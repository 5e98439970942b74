"""Deterministic synthetic docs for the store tests (also imported by the crash-test child).

Doc `i` has `doc_length(i)` stored rows at positions 1, 3, 5, … of a token sequence of length
2n + 1, with activations drawn from a generator seeded by `i`: any run that feeds the same docs
must store exactly the same bytes, whatever was interrupted on the way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from saescope.store import DocRecord, StoreWriter

D = 8
IDENTITY = {"dataset": "synthetic", "unit": "window", "context_len": 32, "seed": 0}


class DocRows(NamedTuple):
    activations: torch.Tensor
    token_ids: torch.Tensor
    doc_ids: torch.Tensor
    positions: torch.Tensor
    record: DocRecord


def doc_length(i: int) -> int:
    return 1 + (i * 37) % 13


def doc(i: int, d: int = D) -> DocRows:
    n = doc_length(i)
    g = torch.Generator().manual_seed(1000 + i)
    acts = torch.randn(n, d, generator=g) * (1 + i % 3) + (i % 5)
    tokens = (torch.arange(2 * n + 1, dtype=torch.int32) * 7 + i) % 1000
    positions = torch.arange(n, dtype=torch.int32) * 2 + 1
    record = DocRecord(i, tokens.tolist(), f"text of doc {i}", "synthetic")
    return DocRows(acts, tokens[positions.long()], torch.full((n,), i, dtype=torch.int64), positions, record)


def open_writer(out: Path | str, *, target_rows: int, shard_rows: int = 40, **kw: Any) -> StoreWriter:
    args: dict[str, Any] = {
        "model": "tiny-model",
        "revision": None,
        "hookpoint": "model.layers.1",
        "hookpoint_alias": "resid_post:1",
        "d_model": D,
        "dtype": "float32",
        "capture": {"tokens": target_rows, "note": "synthetic"},
        "identity": IDENTITY,
    }
    args.update(kw)
    return StoreWriter(out, shard_rows=shard_rows, target_rows=target_rows, **args)


def my_docs(start: int, rank: int = 0, world_size: int = 1):
    """Doc ids of one rank (docs are dealt round-robin), from the first one >= start."""
    i = start + (rank - start) % world_size
    while True:
        yield i
        i += world_size


def feed(
    writer: StoreWriter,
    docs_per_add: int = 5,
    max_docs: int | None = None,
    sleep: float = 0.0,
    start: int | None = None,
) -> None:
    """Feed docs (from the writer's resume point, or `start`) until its target is reached."""
    ids = my_docs(writer.next_doc if start is None else start, writer.rank, writer.world_size)
    fed = 0
    while not writer.done and (max_docs is None or fed < max_docs):
        batch = [doc(next(ids), writer.d_model) for _ in range(docs_per_add)]
        writer.add(
            torch.cat([b.activations for b in batch]),
            torch.cat([b.token_ids for b in batch]),
            torch.cat([b.doc_ids for b in batch]),
            torch.cat([b.positions for b in batch]),
            [b.record for b in batch],
        )
        fed += docs_per_add
        if sleep:
            time.sleep(sleep)


def expected(target_rows: int, rank: int = 0, world_size: int = 1, d: int = D) -> DocRows:
    """The rows a store of this rank must hold: its docs in order, the last one truncated."""
    parts, n = [], 0
    for i in my_docs(0, rank, world_size):
        if n >= target_rows:
            break
        parts.append(doc(i, d))
        n += len(parts[-1].doc_ids)

    def cat(field: str) -> torch.Tensor:
        return torch.cat([getattr(p, field) for p in parts])[:target_rows]

    return DocRows(cat("activations"), cat("token_ids"), cat("doc_ids"), cat("positions"), parts[-1].record)


def rows_of(acts: torch.Tensor) -> dict[bytes, int]:
    """Row content → row index (synthetic rows are all distinct)."""
    table = {bytes(np.ascontiguousarray(r)): i for i, r in enumerate(acts.float().numpy())}
    assert len(table) == len(acts)
    return table
