"""Transcoders and SAEs on the tiny Llama with weights the circuit tests control.

`random_transcoder` draws a TopK transcoder for one layer's MLP (random unit encoder rows scaled so
that several latents fire, random decoder rows, an optional random skip path); `random_transcoders`
one per layer. `planted_circuit` builds a model and transcoders in which latent A at layer 0 drives
latent B at layer 1, which drives the target token's logit, by construction. `save_set` writes a
set as `saescope train` lays one out (one folder per layer).

This module knows nothing about the circuit code under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from saescope.circuit.frozen import freeze_prompt
from saescope.sae import get_architecture
from saescope.sae.formats import save_sae
from saescope.sae.transcoder import Transcoder, mlp_transcoder_config

D_MODEL = 32  # the tiny Llama's width


def random_transcoder(
    layer: int,
    d_sae: int = 48,
    k: int = 6,
    seed: int = 0,
    skip: bool = False,
    model: str = "tiny",
    d_model: int = D_MODEL,
    encoder_scale: float = 4.0,
) -> Transcoder:
    """A TopK transcoder of `layer`'s MLP with random weights (see the module docstring)."""
    cfg = mlp_transcoder_config(layer, d_model, d_sae, k, model, skip)
    tc = get_architecture("transcoder")(cfg)
    gen = torch.Generator().manual_seed(seed * 1000 + layer)
    rows = torch.randn(d_sae, d_model, generator=gen)
    rows /= rows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        tc.W_enc.copy_(encoder_scale * rows.t())
        tc.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
        tc.W_dec.copy_(3e-4 * torch.randn(d_sae, d_model, generator=gen))
        tc.b_dec.copy_(1e-4 * torch.randn(d_model, generator=gen))
        if tc.W_skip is not None:
            tc.W_skip.copy_(2e-4 * torch.randn(d_model, d_model, generator=gen))
    assert isinstance(tc, Transcoder)
    return tc.eval()


def random_transcoders(
    num_layers: int = 4, skip: bool = False, seed: int = 0, model: str = "tiny", **kwargs: Any
) -> dict[int, Transcoder]:
    """One random transcoder per layer."""
    return {
        layer: random_transcoder(layer, seed=seed, skip=skip, model=model, **kwargs)
        for layer in range(num_layers)
    }


def save_set(transcoders: dict[int, Transcoder], folder: Path) -> Path:
    """Each transcoder in its own subfolder of `folder` (`layer_N`)."""
    for layer, tc in transcoders.items():
        save_sae(tc, folder / f"layer_{layer}")
    return folder


class Planted(NamedTuple):
    """A model and transcoders with a known circuit A (layer 0) → B (layer 1) → the target logit."""

    model: Any
    """The tiny Llama (MLPs at layers 0 and 1 as the transcoders say, nothing else writing)."""
    transcoders: dict[int, Transcoder]
    """Transcoders of layers 0 and 1."""
    latent_a: int
    """The planted latent at layer 0."""
    latent_b: int
    """The planted latent at layer 1."""
    target: int
    """The token whose logit B raises."""


class TranscoderMLP(nn.Module):
    """An MLP that is its transcoder: the real model then computes what the transcoder says."""

    def __init__(self, transcoder: Transcoder) -> None:
        super().__init__()
        self.transcoder = transcoder

    def forward(self, x: Tensor) -> Tensor:
        return self.transcoder(x).recon


def _plant(tc: Transcoder, latent: int, reads: Tensor, writes: Tensor) -> None:
    """Latent `latent` of `tc` fires where its input points along `reads` (cosine > 0.7) and writes
    `writes`."""
    with torch.no_grad():
        direction = reads / reads.norm()
        tc.W_enc[:, latent] = 4.0 * direction
        tc.b_enc[latent] = -0.7 * 4.0 * float(reads.norm())
        tc.W_dec[latent] = writes


def planted_circuit(
    model: Any, token_ids: list[int], target: int, latent_a: int = 3, latent_b: int = 5
) -> Planted:
    """Make `model`'s MLPs at layers 0 and 1 be transcoders in which latent A (layer 0) fires at the
    last position and writes a direction that latent B (layer 1) reads there, and B writes the
    target's (demeaned, final-norm-weighted) unembedding direction; the other latents are weak."""
    last = len(token_ids) - 1
    tcs = {layer: random_transcoder(layer, d_sae=32, k=4, seed=7, encoder_scale=0.5) for layer in (0, 1)}
    first = freeze_prompt(model, token_ids)
    gen = torch.Generator().manual_seed(11)
    writes_a = torch.randn(D_MODEL, generator=gen)
    _plant(tcs[0], latent_a, first.mlp_inputs[0, last], 0.5 * writes_a / writes_a.norm())
    model.model.layers[0].mlp = TranscoderMLP(tcs[0])
    second = freeze_prompt(model, token_ids)
    unembed = model.get_output_embeddings().weight.detach()
    toward = model.model.norm.weight.detach() * (unembed[target] - unembed.mean(0))
    _plant(tcs[1], latent_b, second.mlp_inputs[1, last], 2.0 * toward / toward.norm())
    model.model.layers[1].mlp = TranscoderMLP(tcs[1])
    return Planted(model, tcs, latent_a, latent_b, target)
