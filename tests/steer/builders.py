"""SAEs bound to the tiny Llama for the steering tests, with weights the tests control.

`topk_sae` draws random unit decoder rows (encoder = decoder transpose, scaled so that the tiny
model's residual stream makes several latents fire); `token_sae` makes latent 0's decoder
direction the unembedding row of one token, so steering it has a known effect; `random_transcoder`
is a transcoder of one of the tiny model's MLPs. `bind` saves an SAE beside the tiny model and
binds it as the stages do.

This module knows nothing about the steering code under test.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saescope.bound import BoundSAE, bind_sae
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import save_sae
from saescope.sae.transcoder import Transcoder, mlp_transcoder_config
from tests.builders import random_topk_sae

HOOKPOINT = "resid_post:1"
D_MODEL = 32  # the tiny Llama's width


def topk_sae(
    model_dir: Path, d_sae: int = 64, k: int = 6, seed: int = 0, scale: float = 8.0
) -> SparseAutoencoder:
    """A TopK SAE on the tiny model's `resid_post:1` with random unit decoder rows."""
    return random_topk_sae(model_dir, d_sae, k, seed, scale)


def bind(sae: SparseAutoencoder, folder: Path) -> BoundSAE:
    """Save `sae` to `folder` and bind it to its (tiny) model."""
    save_sae(sae, folder)
    return bind_sae(folder)


def random_transcoder(
    model_dir: Path, layer: int = 1, d_sae: int = 48, k: int = 4, seed: int = 0, skip: bool = True
) -> SparseAutoencoder:
    """A TopK transcoder of the tiny model's MLP at `layer` (`mlp_in` → `mlp_out`, 32 → 32): random
    unit encoder rows (latents of about 1 on the normed input), decoder rows of norm 1e-3 (the
    random MLP's outputs have norms near 3e-3), small random biases and, with `skip`, a random
    skip path of the same scale."""
    tc = Transcoder(mlp_transcoder_config(layer, D_MODEL, d_sae, k, str(model_dir), skip))
    gen = torch.Generator().manual_seed(seed)
    enc, dec = torch.randn(d_sae, D_MODEL, generator=gen), torch.randn(d_sae, D_MODEL, generator=gen)
    with torch.no_grad():
        tc.W_enc.copy_((enc / enc.norm(dim=1, keepdim=True)).t())
        tc.W_dec.copy_(1e-3 * dec / dec.norm(dim=1, keepdim=True))
        tc.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
        tc.b_dec.copy_(1e-4 * torch.randn(D_MODEL, generator=gen))
        if skip:
            tc.W_skip.copy_(1e-4 * torch.randn(D_MODEL, D_MODEL, generator=gen))
    return tc.eval()
