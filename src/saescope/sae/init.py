"""Initialising an SAE, and folding a training-time input scale into its weights.

- `initialize`: decoder rows are random unit-norm directions, the encoder is the decoder's
  transpose, b_enc = 0, b_dec as given (OpenAI's TopK recipe, Gao et al. 2024);
  architecture state such as JumpReLU/BatchTopK thresholds is reset.
- `geometric_median`: Weiszfeld's iteration (OpenAI initialise b_dec with the geometric median of a
  sample; Anthropic's Towards Monosemanticity with the mean).
- `fold_input_scale`: an SAE trained on x·s becomes one that takes raw x, with identical latents.

This module knows nothing about training loops, data sources or files.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError, require
from .base import SparseAutoencoder


@torch.no_grad()
def initialize(
    sae: SparseAutoencoder, *, generator: torch.Generator | None = None, b_dec: Tensor | None = None
) -> None:
    """Set the SAE's parameters in place (W_enc keeps its latent-major storage).

    `generator` makes the draw reproducible; it may live on another device than the SAE (the draw is
    made on the generator's device and moved).
    """
    gen_device = generator.device if generator is not None else sae.W_dec.device
    d_out = sae.W_dec.shape[1]

    def unit_rows(width: int) -> Tensor:
        rows = torch.randn(sae.d_sae, width, generator=generator, device=gen_device, dtype=torch.float32)
        return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)

    directions = unit_rows(d_out)
    sae.W_dec.copy_(directions)
    # A transcoder whose output is narrower or wider than its input gets its own encoder directions.
    sae.W_enc.copy_((directions if d_out == sae.d_in else unit_rows(sae.d_in)).t())
    sae.b_enc.zero_()
    if b_dec is None:
        sae.b_dec.zero_()
    else:
        require(
            tuple(b_dec.shape) == (d_out,),
            f"b_dec must have shape ({d_out},), got {tuple(b_dec.shape)}",
        )
        sae.b_dec.copy_(b_dec)
    sae.initialize_extra()


@torch.no_grad()
def geometric_median(x: Tensor, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """The point minimising Σ_i ‖x_i − m‖ for x [N, d] (Weiszfeld's algorithm), in float32.

    Starts from the mean; stops when a step moves m by less than `tol` relative to the data's scale.
    """
    require(
        x.ndim == 2 and x.shape[0] > 0,
        f"geometric_median needs a non-empty [N, d] tensor, got {tuple(x.shape)}",
    )
    points = x.float()
    median = points.mean(dim=0)
    scale = float(points.norm(dim=1).mean()) or 1.0
    for _ in range(max_iter):
        # Clamping the distance keeps a point that coincides with m from dividing by zero.
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(1e-12 * scale)
        new = (weights[:, None] * points).sum(dim=0) / weights.sum()
        moved = float((new - median).norm())
        median = new
        if moved <= tol * scale:
            break
    return median


@torch.no_grad()
def fold_input_scale(sae: SparseAutoencoder, scale: float, method: str = "unit_mean_squared_norm") -> None:
    """Make an SAE trained on x·scale take raw x, with identical latent activations.

    pre = (x·s − b_dec)·W_enc + b_enc = (x − b_dec/s)·(s·W_enc) + b_enc, and the reconstruction of x
    is (latents·W_dec + b_dec)/s: so W_enc ← s·W_enc, b_dec ← b_dec/s, W_dec ← W_dec/s, with b_enc and
    any threshold unchanged. Records `{"method", "scale", "folded": true}` in `sae.cfg.normalization`.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"the input scale to fold must be positive and finite, got {scale}")
    if sae.cfg.d_out is not None:
        raise ConfigError("a transcoder's input and output scales differ: fold them with its fold_scales")
    if sae.cfg.normalization.get("folded"):
        raise ConfigError(
            "this SAE already has an input scale folded in; folding another would compound them"
        )
    sae.W_enc.mul_(scale)
    sae.b_dec.div_(scale)
    sae.W_dec.div_(scale)
    sae.cfg = sae.cfg.with_updates(normalization={"method": method, "scale": scale, "folded": True})
