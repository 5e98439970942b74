"""ONE loop from model inputs to activations at their positions, with token ids, doc ids and positions.

    for batch in iter_positions(loaded, hookpoints, inputs, batch_size=16):
        batch.activations["model.layers.15"]   # [n, d] at the inputs' positions, in input order
        batch.token_ids, batch.doc_ids, batch.positions   # [n] each, on the CPU

Capture, on-the-fly training, evaluation and the latent index all read activations through it
(delphi's `LatentCache.run` is the shape). Inputs are padded with `models.pad_token_id`, the
forward pass stops after the last hookpoint (`hooks.collect_activations`), and only the stored
positions are gathered. `for_rank` gives a torchrun rank its share of the inputs (doc_id modulo
the world size), the one rule every stage uses to split a corpus.

This module knows nothing about stores, SAEs or what the activations are for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .data import InputBatch, ModelInput, batched, collate
from .hookpoints import Hookpoint
from .hooks import collect_activations
from .models import LoadedModel, pad_token_id


class PositionBatch(NamedTuple):
    """One forward pass's activations at the stored positions of its inputs."""

    inputs: list[ModelInput]
    """The model inputs of this pass."""
    tensors: InputBatch
    """Their padded `input_ids` and `attention_mask` (on the model's device) and the batch
    `rows`/`cols` of every stored position (CPU)."""
    activations: dict[str, Tensor]
    """Hookpoint name → `[n, d]` activations at the stored positions (model device and dtype)."""
    token_ids: Tensor
    """[n] token id at each position (int32, CPU)."""
    doc_ids: Tensor
    """[n] doc id of each position's input (int64, CPU)."""
    positions: Tensor
    """[n] index of each position within its input (int32, CPU)."""


def for_rank(inputs: Iterable[ModelInput], rank: int, world_size: int) -> Iterator[ModelInput]:
    """The inputs rank `rank` of `world_size` takes: those with doc_id % world_size == rank."""
    return (i for i in inputs if i.doc_id % world_size == rank)


def iter_positions(
    loaded: LoadedModel,
    hookpoints: Sequence[Hookpoint],
    inputs: Iterable[ModelInput],
    batch_size: int,
    trim: Callable[[list[ModelInput]], list[ModelInput]] | None = None,
) -> Iterator[PositionBatch]:
    """Run the model over `inputs`, `batch_size` at a time (see the module docstring).

    `trim(batch)` may shorten a batch before its forward pass (capture's last batch runs only the
    inputs it stores). Gradients are off inside each forward pass only, never across a `yield`:
    grad mode is thread state, and the consumer may be training.
    """
    pad = pad_token_id(loaded.tokenizer)
    with collect_activations(loaded.model, hookpoints) as collector:
        for full in batched(inputs, batch_size):
            batch = trim(full) if trim is not None else full
            if not batch:
                continue
            tensors = collate(batch, pad, loaded.device)
            with torch.no_grad():
                acts = collector.run(input_ids=tensors.input_ids, attention_mask=tensors.attention_mask)
                at = {}
                for name, act in acts.items():
                    rows = tensors.rows.to(act.device, non_blocking=True)
                    cols = tensors.cols.to(act.device, non_blocking=True)
                    at[name] = act[rows, cols]
            doc_ids = torch.tensor([b.doc_id for b in batch for _ in b.positions], dtype=torch.int64)
            yield PositionBatch(batch, tensors, at, tensors.token_ids, doc_ids, tensors.cols.to(torch.int32))


__all__ = ["PositionBatch", "for_rank", "iter_positions"]
