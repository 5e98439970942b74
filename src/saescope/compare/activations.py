"""The model's activations at an SAE's hookpoint, at chosen positions of token sequences.

    rows = activations_at(bound, sequences, positions, batch_size=8)
    rows[i]            # [len(positions[i]), d_in] float32 on the CPU

Absorption and sparse probing read the model this way: sequences are built by the caller (token
ids, BOS first where the model expects one), padded on the right in batches of similar length,
run up to the hookpoint only (`hooks.collect_activations` stops the forward there), and only the
asked positions are kept.

This module knows nothing about tasks, probes or what the positions mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..bound import BoundSAE
from ..hooks import collect_activations
from ..models import pad_token_id


@torch.inference_mode()
def activations_at(
    bound: BoundSAE,
    sequences: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    batch_size: int = 8,
    desc: str = "activations",
) -> list[Tensor]:
    """Activations at `positions[i]` of `sequences[i]` for every i (see the module docstring)."""
    loaded = bound.loaded_model
    pad = pad_token_id(loaded.tokenizer)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out: list[Tensor] = [torch.empty(0)] * len(sequences)
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    with collect_activations(loaded.model, [bound.hookpoint]) as collector:
        for batch in tqdm(batches, desc=desc, unit="batch", dynamic_ncols=True, leave=False):
            width = max(len(sequences[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(sequences[i])] = torch.as_tensor(list(sequences[i]), dtype=torch.long)
                mask[row, : len(sequences[i])] = 1
            acts = collector.run(input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device))
            hidden = acts[bound.hookpoint.name].float().cpu()
            for row, i in enumerate(batch):
                out[i] = hidden[row, list(positions[i])].clone()
    return out


__all__ = ["activations_at"]
