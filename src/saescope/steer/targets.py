"""Which tokens measure a steering effect: a target the user names, or the latents' own top tokens.

A latent's top-logit tokens are the largest entries of W_U · (γ ⊙ d_i): its decoder direction
read through the final norm's weight γ and the unembedding, the direct effect on the logits that
TransformerLens-based tools show for SAE latents (they fold γ into W_U). The effect of a steering
run is then the mean log-probability of those tokens along its completions, compared with the
unsteered run and the controls.

This module knows nothing about generation or hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import SaescopeError
from ..models import LoadedModel
from ..sae.base import SparseAutoencoder

TOP_TOKENS = 10
"""Top-logit tokens measured when no target is named."""


def final_norm_weight(model: Any) -> Tensor | None:
    """The weight of the norm before the unembedding (Llama's `model.norm`, GPT-2's `ln_f`), if any."""
    for path in ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm"):
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        weight = getattr(module, "weight", None)
        if isinstance(weight, Tensor):
            return weight
    return None


def logit_weights(model: Any, directions: Tensor) -> Tensor:
    """[m, V] direct logit effect of each of `directions` [m, d] (see the module docstring)."""
    unembed = model.get_output_embeddings().weight
    gamma = final_norm_weight(model)
    scaled = directions.to(unembed.device, torch.float32)
    if gamma is not None:
        scaled = scaled * gamma.float()
    return scaled @ unembed.float().T


def top_logit_tokens(
    model: Any, sae: SparseAutoencoder, latents: Sequence[int], n: int = TOP_TOKENS
) -> list[int]:
    """The `n` tokens whose logits the latents' summed decoder directions raise most."""
    direction = sae.W_dec[list(latents)].detach().float().sum(0, keepdim=True)
    return logit_weights(model, direction)[0].topk(n).indices.tolist()


def target_tokens(
    loaded: LoadedModel, sae: SparseAutoencoder, latents: Sequence[int], target: str | None
) -> list[int]:
    """The first token of `target`, or the latents' top-logit tokens when it is None."""
    if target is None:
        return top_logit_tokens(loaded.model, sae, latents)
    ids = loaded.tokenizer(target, add_special_tokens=False)["input_ids"]
    if not ids:
        raise SaescopeError(f"target {target!r} has no tokens")
    return [int(ids[0])]


__all__ = ["TOP_TOKENS", "final_norm_weight", "logit_weights", "target_tokens", "top_logit_tokens"]
