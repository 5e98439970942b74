"""The transcoder latents active on a prompt, and the error each transcoder leaves.

`active_transcoder_latents` encodes each layer's frozen MLP input with that layer's transcoder
(its own selection: TopK, ReLU of the top k) and lists every latent with a positive activation at
every position, ordered by (layer, position, latent), with the decoder row it writes and the
encoder row it reads. The error of a layer at a position is the MLP's real output minus the
transcoder's whole output there (decoder, `b_dec` and skip path), so that latents + linear part +
error is the real output exactly.

This module knows nothing about graphs, attention or files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .frozen import FrozenPrompt


class ActiveLatents(NamedTuple):
    """Every active latent of a prompt (N of them), in (layer, position, latent) order."""

    layers: Tensor
    """[N] int64 decoder layer."""
    positions: Tensor
    """[N] int64 token position."""
    features: Tensor
    """[N] int64 latent id in its layer's dictionary."""
    activations: Tensor
    """[N] float32 activation (> 0)."""
    decoder: Tensor
    """[N, d] the decoder row each writes (unscaled)."""
    encoder: Tensor
    """[N, d_in] the encoder row each reads (its pre-activation is x · row + bias)."""
    encoder_bias: Tensor
    """[N] its encoder bias."""
    pre_activations: Tensor
    """[N] its pre-activation on the prompt, as its dictionary computed it."""

    @property
    def size(self) -> int:
        """N, the number of active latents."""
        return int(self.layers.shape[0])

    def select(self, index: Tensor) -> ActiveLatents:
        """The latents at `index` (a 1-D index or mask), in that order."""
        return ActiveLatents(*(t[index] for t in self))

    def scaled_decoder(self) -> Tensor:
        """[N, d] activation × decoder row: what each latent adds to the residual stream."""
        return self.activations[:, None] * self.decoder


def _empty(d_out: int, d_in: int) -> ActiveLatents:
    long, flt = torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return ActiveLatents(long, long, long, flt, torch.zeros(0, d_out), torch.zeros(0, d_in), flt, flt)


@torch.no_grad()
def active_transcoder_latents(
    frozen: FrozenPrompt, transcoders: Mapping[int, Any]
) -> tuple[ActiveLatents, Tensor]:
    """The active latents of every layer's transcoder on the prompt, and the errors [L, T, d_out]
    (a layer without a transcoder: its whole MLP output is its error)."""
    n_layers, _, d_out = frozen.mlp_outputs.shape
    d_in = frozen.mlp_inputs.shape[-1]
    errors = frozen.mlp_outputs.clone()
    parts: list[ActiveLatents] = []
    for layer in range(n_layers):
        tc = transcoders.get(layer)
        if tc is None:
            continue
        x = frozen.mlp_inputs[layer].to(tc.W_enc.device, tc.W_enc.dtype)
        codes = tc.encode(x)  # once: the whole output is decoded from these codes, as forward() does
        acts = codes.latent_acts.float().cpu()
        ids = codes.latent_indices.cpu()
        recon = (tc.decode(codes.latent_acts, codes.latent_indices) + tc.skip(x)).float().cpu()
        errors[layer] = frozen.mlp_outputs[layer] - recon
        pos, slot = torch.nonzero(acts > 0, as_tuple=True)
        feats = ids[pos, slot]
        order = torch.argsort(pos * (tc.W_enc.shape[1] + 1) + feats)
        pos, feats, values = pos[order], feats[order], acts[pos, slot][order]
        w_enc, w_dec = tc.W_enc.detach().float().cpu(), tc.W_dec.detach().float().cpu()
        b_enc = tc.b_enc.detach().float().cpu()
        pre = codes.pre_acts.float().cpu()[pos, feats]
        parts.append(
            ActiveLatents(
                torch.full_like(pos, layer),
                pos,
                feats,
                values,
                w_dec[feats],
                w_enc.T[feats],
                b_enc[feats],
                pre,
            )
        )
    if not parts:
        return _empty(d_out, d_in), errors
    return ActiveLatents(*(torch.cat(t) for t in zip(*parts))), errors


def mlp_injections(latents: ActiveLatents, errors: Tensor) -> list[Tensor]:
    """[T, d] per layer: what the latents write plus the error — the MLP's output without the
    transcoder's linear part (`b_dec`, skip)."""
    out = errors.clone()
    out.index_put_((latents.layers, latents.positions), latents.scaled_decoder(), accumulate=True)
    return list(out)


__all__ = ["ActiveLatents", "active_transcoder_latents", "mlp_injections"]
