"""SAEs bound to the tiny Llama for the steering tests, with weights the tests control.

`topk_sae` draws random unit decoder rows (encoder = decoder transpose, scaled so that the tiny
model's residual stream makes several latents fire); `token_sae` makes latent 0's decoder
direction the unembedding row of one token, so steering it has a known effect. `bind` saves an SAE
beside the tiny model and binds it as the stages do.

This module knows nothing about the steering code under test.
"""

from __future__ import annotations

from pathlib import Path

from saescope.bound import BoundSAE, bind_sae
from saescope.sae import SparseAutoencoder
from saescope.sae.formats import save_sae
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
