"""The model's readout: its final norm and unembedding, and the direct effect of a direction on the logits.

The "logit effect" of a latent (the "logit weights" of Anthropic's dashboards) is the direct effect
on the output logits of adding its decoder direction d to the residual stream: W_U · N(d), read
through the model's final norm N. A norm is not linear: RMSNorm divides by the residual stream's
RMS at each token, which a direction alone cannot know. We apply the model's own final-norm module
to d and subtract its value at 0 (LayerNorm's bias): for RMSNorm, LayerNorm and Gemma's (1 + w)
variant alike, N(d) − N(0) is the norm's gain times the (centred) direction, scaled by one positive
factor. So the ranking of tokens is exact and the values are comparable within a direction; their
unit is a logit per unit of a residual stream equal to d (positive: the token is promoted). An
unembedding bias is left out (it does not depend on the direction).

The latent index's logit tables, the dashboards and steering's target tokens all read effects from
`direct_logits`, so they name the same tokens for a latent.

This module knows nothing about SAEs, indexes or generation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")
"""Attribute names of the norm before the unembedding (Llama, Gemma, Mistral, Qwen: `norm`; GPT-2:
`ln_f`; GPT-NeoX/Pythia: `final_layer_norm`; …), looked up on the base model."""
BLOCK = 512
"""Directions read out at a time (each gives a vocabulary-sized row)."""


def final_norm(model: Any) -> nn.Module | None:
    """The model's final norm (before the unembedding), by its usual names; None when not found."""
    base = getattr(model, "base_model", model)
    for holder in (base, getattr(base, "decoder", None), model):
        for name in FINAL_NORM_NAMES:
            module = getattr(holder, name, None) if holder is not None else None
            if isinstance(module, nn.Module):
                return module
    return None


@torch.no_grad()
def direct_logit_blocks(model: Any, directions: Tensor, block: int = BLOCK) -> Iterator[Tensor]:
    """The direct logit effect W_U · (N(d) − N(0)) of `directions` [m, d] (see the module
    docstring), `block` directions at a time: [≤ block, V] float32 on the model's device, in order.
    A caller that keeps only each row's top tokens holds one block of vocabulary-sized rows."""
    unembed = model.get_output_embeddings().weight
    norm = final_norm(model)
    if norm is None:
        log.warning(
            "no final norm found in %s; logit effects read the unembedding alone", type(model).__name__
        )
    device, dtype = unembed.device, unembed.dtype
    zero = torch.zeros(1, directions.shape[-1], device=device, dtype=dtype)
    offset = norm(zero) if norm is not None else zero
    for a in range(0, directions.shape[0], block):
        d = directions[a : a + block].to(device=device, dtype=dtype)
        moved = norm(d) - offset if norm is not None else d
        yield (moved @ unembed.T).float()


def direct_logits(model: Any, directions: Tensor) -> Tensor:
    """[m, V] float32: the direct logit effect of each of a few `directions` [m, d] at once."""
    rows = list(direct_logit_blocks(model, directions))
    if not rows:
        return torch.zeros(0, model.get_output_embeddings().weight.shape[0])
    return torch.cat(rows)


__all__ = ["BLOCK", "FINAL_NORM_NAMES", "direct_logit_blocks", "direct_logits", "final_norm"]
