"""SAEs bound to the tiny Llama for the steering tests, with weights the tests control.

`topk_sae` draws random unit decoder rows (encoder = decoder transpose, scaled so that the tiny
model's residual stream makes several latents fire); `token_sae` makes latent 0's decoder
direction the unembedding row of one token, so steering it has a known effect. `bind` saves an SAE
beside the tiny model and binds it as the stages do.

This module knows nothing about the steering code under test.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saescope.bound import BoundSAE, bind_sae
from saescope.sae import SAEConfig, SparseAutoencoder, get_architecture
from saescope.sae.formats import save_sae

HOOKPOINT = "resid_post:1"
D_MODEL = 32  # the tiny Llama's width


def topk_sae(
    model_dir: Path, d_sae: int = 64, k: int = 6, seed: int = 0, scale: float = 8.0
) -> SparseAutoencoder:
    """A TopK SAE on the tiny model's `resid_post:1` with random unit decoder rows."""
    cfg = SAEConfig(
        architecture="topk",
        d_in=D_MODEL,
        d_sae=d_sae,
        k=k,
        model=str(model_dir),
        hookpoint=HOOKPOINT,
        hookpoint_alias=HOOKPOINT,
    )
    sae = get_architecture("topk")(cfg)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(d_sae, D_MODEL, generator=gen)
    rows /= rows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(scale * rows.t())
        sae.b_enc.copy_(0.01 * torch.randn(d_sae, generator=gen))
        sae.b_dec.copy_(0.01 * torch.randn(D_MODEL, generator=gen))
    return sae.eval()


def bind(sae: SparseAutoencoder, folder: Path) -> BoundSAE:
    """Save `sae` to `folder` and bind it to its (tiny) model."""
    save_sae(sae, folder)
    return bind_sae(folder)
