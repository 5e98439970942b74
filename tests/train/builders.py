"""Activation stores of structured synthetic data for the training tests.

Rows are sparse non-negative combinations of a ground-truth dictionary (`sparse_dataset` of the
SAE tests), scaled up and shifted so that the trainer's normalisation and b_dec initialisation do
real work. `write_store` writes them with `StoreWriter`, a few rows per "doc".

This module knows nothing about the trainer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saescope.store import DocRecord, StoreWriter
from tests.sae.builders import sparse_dataset

D = 32
SCALE = 7.0
"""Raw rows have E‖x‖² ≈ SCALE² (plus the offset): the normalisation must undo it."""


def store_rows(rows: int, d: int = D, seed: int = 0) -> torch.Tensor:
    """The raw activations `write_store` stores, in doc order."""
    x = sparse_dataset(rows, d_in=d, n_features=4 * d, active=3, seed=seed) * SCALE
    offset = torch.linspace(-1.0, 1.0, d)
    return x + offset


def write_store(out: Path, rows: int = 4096, d: int = D, seed: int = 0, per_doc: int = 16) -> Path:
    """A float32 store of `store_rows(rows, d, seed)` recording model `tiny-model`, `resid_post:1`."""
    acts = store_rows(rows, d, seed)
    writer = StoreWriter(
        out,
        model="tiny-model",
        revision=None,
        hookpoint="model.layers.1",
        hookpoint_alias="resid_post:1",
        d_model=d,
        dtype="float32",
        capture={"tokens": rows, "dataset": "synthetic", "unit": "window", "context_len": per_doc + 1},
        identity={"dataset": "synthetic", "seed": seed},
        shard_rows=1024,
        target_rows=rows,
    )
    with writer:
        for doc, start in enumerate(range(0, rows, per_doc)):
            n = min(per_doc, rows - start)
            tokens = list(range(n + 1))
            writer.add(
                acts[start : start + n],
                torch.tensor(tokens[1:], dtype=torch.int32),
                torch.full((n,), doc, dtype=torch.int64),
                torch.arange(1, n + 1, dtype=torch.int32),
                [DocRecord(doc, tokens, f"doc {doc}", "synthetic")],
            )
    return out
