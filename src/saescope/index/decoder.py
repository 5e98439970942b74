"""What a latent's decoder direction says on its own: its cosine neighbours and its logit effects.

Neighbours: the latents whose decoder rows have the largest cosine similarity with its own,
computed a block of rows at a time (never the [d_sae × d_sae] matrix at once).

Logit effects: each decoder row's direct effect on the logits through the model's final norm and
unembedding (`saescope.readout.direct_logits`, where the maths and its units are explained),
keeping each latent's top and bottom tokens, a block of rows at a time.

This module knows nothing about the index's files or queries.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor

from ..readout import direct_logit_blocks

log = logging.getLogger(__name__)

BLOCK_LATENTS = 512
"""Decoder rows handled at a time."""


class LogitEffects(NamedTuple):
    """The top and bottom tokens of every latent's logit effect."""

    top_ids: Tensor
    """[d_sae, n] token ids it raises most, largest first."""
    top_values: Tensor
    """[d_sae, n] their logit effects."""
    bottom_ids: Tensor
    """[d_sae, n] token ids it lowers most, most negative first."""
    bottom_values: Tensor
    """[d_sae, n] their logit effects."""


@torch.no_grad()
def neighbours(w_dec: Tensor, n: int) -> pa.Table:
    """Each latent's `n` nearest decoder directions by cosine (itself excluded) as
    `neighbours.parquet` rows: `latent`, `other`, `cosine`, ranked by cosine."""
    w = w_dec.float()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d_sae = w.shape[0]
    n = min(n, d_sae - 1)
    latents, others, cosines = [], [], []
    for a in range(0, d_sae, BLOCK_LATENTS):
        b = min(a + BLOCK_LATENTS, d_sae)
        sims = w[a:b] @ w.T
        sims[torch.arange(b - a), torch.arange(a, b)] = -torch.inf
        values, ids = sims.topk(n, dim=1) if n > 0 else (sims[:, :0], sims[:, :0].long())
        latents.append(torch.arange(a, b).repeat_interleave(n))
        others.append(ids.flatten())
        cosines.append(values.flatten())
    return pa.table(
        {
            "latent": pa.array(torch.cat(latents).numpy().astype(np.int32)),
            "other": pa.array(torch.cat(others).numpy().astype(np.int32)),
            "cosine": pa.array(torch.cat(cosines).numpy().astype(np.float32)),
        }
    )


def logit_effects(w_dec: Tensor, model: Any, n: int) -> LogitEffects:
    """The `n` top and bottom tokens of each decoder row's effect on the logits."""
    n = min(n, model.get_output_embeddings().weight.shape[0])
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for logits in direct_logit_blocks(model, w_dec, BLOCK_LATENTS):
        top = logits.topk(n, dim=1)
        bottom = logits.topk(n, dim=1, largest=False)
        parts.append((top.indices.cpu(), top.values.cpu(), bottom.indices.cpu(), bottom.values.cpu()))
    return LogitEffects(*(torch.cat(column) for column in zip(*parts)))


def logits_table(effects: LogitEffects) -> pa.Table:
    """`logits.parquet` rows: `latent`, `side` (top or bottom), `rank` from 0, `token_id`, `effect`."""
    d_sae, n = effects.top_ids.shape
    latent = np.repeat(np.arange(d_sae, dtype=np.int32), n)
    rank = np.tile(np.arange(n, dtype=np.int32), d_sae)
    tables = []
    for side, ids, values in (
        ("top", effects.top_ids, effects.top_values),
        ("bottom", effects.bottom_ids, effects.bottom_values),
    ):
        tables.append(
            pa.table(
                {
                    "latent": pa.array(latent),
                    "side": pa.array([side] * len(latent), type=pa.string()).dictionary_encode(),
                    "rank": pa.array(rank),
                    "token_id": pa.array(ids.flatten().numpy().astype(np.int32)),
                    "effect": pa.array(values.flatten().numpy().astype(np.float32)),
                }
            )
        )
    return pa.concat_tables(tables)


__all__ = ["LogitEffects", "logit_effects", "logits_table", "neighbours"]
