"""A TopK transcoder written where only JumpReLU can be read (circuit-tracer's loader, SAELens's
transcoder classes): per-latent thresholds calibrated on a sample of its inputs, and how well the
JumpReLU copy agrees with the TopK original on rows the calibration did not see.

TopK picks a row's k largest pre-activations; JumpReLU fires latent j wherever its pre-activation
z_j exceeds a fixed θ_j (output z_j·H(z_j − θ_j), the same values where both fire). No θ makes them
agree on every row, so this is an approximation, measured, never silent: on the calibration rows
θ_j is the cut of z_j (among its observed values, midway between neighbours) that misclassifies
the fewest rows as "j in the top k" (false firings plus misses), and at least 0 (a JumpReLU fires
only on positive z, as a TopK of ReLU does). A latent that never enters the top k on the sample
gets θ_j just above its largest observed z_j. `Agreement` then counts, on held-out rows, the share
whose active set is identical and the relative difference of the reconstructions.

This module knows nothing about files or formats.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...errors import SaescopeError
from ..base import SparseAutoencoder

HELD_OUT_SHARE = 0.25
"""Share of the sample kept out of the calibration to measure the agreement on."""
MIN_ROWS = 64
"""Fewest sample rows a calibration accepts."""


class Agreement(NamedTuple):
    """How a JumpReLU copy of a TopK transcoder agrees with it on held-out rows."""

    rows: int
    """Held-out rows compared (not used for the calibration)."""
    identical_share: float
    """Share of those rows whose set of active latents is exactly the TopK one."""
    relative_difference: float
    """‖y_jumprelu − y_topk‖ / ‖y_topk‖ over all of them (Frobenius norms of the whole outputs,
    skip path included)."""
    topk_l0: float
    """Mean active latents per row of the original (k, or fewer where pre-activations are ≤ 0)."""
    jumprelu_l0: float
    """Mean active latents per row of the copy."""

    def describe(self) -> str:
        """One line for the user."""
        return (
            f"JumpReLU copy of the TopK transcoder on {self.rows:,} held-out rows: "
            f"{self.identical_share:.1%} of rows with the identical active set, reconstruction "
            f"differs by {self.relative_difference:.1%} (relative), L0 {self.jumprelu_l0:.1f} vs "
            f"{self.topk_l0:.1f}"
        )


class Calibrated(NamedTuple):
    """Thresholds for a TopK transcoder and their measured agreement."""

    thresholds: Tensor
    """[d_sae] θ_j (float32, ≥ 0)."""
    agreement: Agreement
    """On the held-out part of the sample."""


def topk_mask(sae: SparseAutoencoder, x: Tensor) -> tuple[Tensor, Tensor]:
    """([N, d_sae] bool: latents the TopK original fires on each row, [N, d_sae] pre-activations)."""
    with torch.no_grad():
        acts, idx, pre = sae.encode(x)
    fired = torch.zeros_like(pre, dtype=torch.bool).scatter_(-1, idx, acts > 0)
    return fired, pre


def fewest_errors(pre: Tensor, fired: Tensor) -> Tensor:
    """[d_sae] the cut of each column of `pre` [N, d_sae] between its observed values that
    misclassifies the fewest rows of `fired` (see the module docstring)."""
    values, order = pre.sort(dim=0, descending=True)
    hits = fired.gather(0, order).to(torch.int64).cumsum(0)  # [N, d]: true firings among the top i+1
    positives = hits[-1]
    above = torch.arange(1, pre.shape[0] + 1, device=pre.device)[:, None]
    errors = (above - hits) + (positives - hits)  # false firings + misses when the top i+1 fire
    best = errors.argmin(dim=0)
    none_better = positives <= errors.gather(0, best[None])[0]  # firing nowhere errs on `positives`
    below = torch.cat([values[1:], values[-1:] - 1.0])  # the next observed value (one less at the end)
    cut = (values.gather(0, best[None])[0] + below.gather(0, best[None])[0]) / 2
    top = values[0]
    never = torch.nextafter(top, torch.full_like(top, float("inf")))
    return torch.where(none_better, never, cut)


def agreement(sae: SparseAutoencoder, thresholds: Tensor, x: Tensor) -> Agreement:
    """How JumpReLU with `thresholds` agrees with the TopK `sae` on rows `x` [N, d_in]."""
    fired, pre = topk_mask(sae, x)
    jumped = pre > thresholds.to(pre)
    decoder, bias = sae.W_dec.detach().to(pre), sae.b_dec.detach().to(pre)
    with torch.no_grad():
        direct = sae.direct_path(x)
    shared = bias if direct is None else bias + direct.to(pre)
    topk = (pre * fired) @ decoder + shared
    copy = (pre * jumped) @ decoder + shared
    scale = float(topk.norm())
    return Agreement(
        rows=x.shape[0],
        identical_share=float((fired == jumped).all(-1).double().mean()),
        relative_difference=float((copy - topk).norm()) / scale if scale > 0 else float("nan"),
        topk_l0=float(fired.sum(-1).double().mean()),
        jumprelu_l0=float(jumped.sum(-1).double().mean()),
    )


def calibrate_jumprelu(
    sae: SparseAutoencoder, sample: Tensor, held_out_share: float = HELD_OUT_SHARE
) -> Calibrated:
    """Thresholds θ [d_sae] making JumpReLU approximate the TopK `sae` on `sample` [N, d_in] (its
    inputs), calibrated on the first rows and measured on the last `held_out_share` of them."""
    if not sae.takes_k:
        raise SaescopeError(f"a {sae.architecture} dictionary has no TopK to approximate")
    rows = sample.shape[0]
    held = int(rows * held_out_share)
    if rows - held < MIN_ROWS or held < 1:
        raise SaescopeError(
            f"calibrating JumpReLU thresholds needs at least {MIN_ROWS} rows plus held-out ones; got {rows}"
        )
    x = sample.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
    fired, pre = topk_mask(sae, x[: rows - held])
    thresholds = fewest_errors(pre.float(), fired).clamp_min(0.0)
    return Calibrated(thresholds, agreement(sae, thresholds, x[rows - held :]))


__all__ = [
    "HELD_OUT_SHARE",
    "MIN_ROWS",
    "Agreement",
    "Calibrated",
    "agreement",
    "calibrate_jumprelu",
    "fewest_errors",
]
