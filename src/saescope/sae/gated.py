"""Gated SAE (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse
Autoencoders").

Two paths share the encoder W_enc: the gate decides which latents fire, the magnitude path how
strongly, each magnitude row being the gate's row rescaled by a learnt per-latent factor:

    π_gate = (x − b_dec) · W_enc + b_gate                       (b_gate is `b_enc` here)
    π_mag  = exp(r_mag) ⊙ ((x − b_dec) · W_enc) + b_mag
    f(x)   = 1[π_gate > 0] ⊙ ReLU(π_mag),      x̂ = f(x) · W_dec + b_dec

so the pre-activations of the shared machinery are π_gate, `select` picks the open gates and
`activate` computes π_mag from them (π_gate − b_gate is the shared product). The gate's step has no
gradient, so the gate learns from the rest of the loss (the architecture's own terms):

- sparsity: λ · Σ_j ReLU(π_gate_j) · ‖W_dec_j‖ (mean over rows; `gate_l1_coefficient`), the
  decoder norms making it invariant to rescaling a latent between encoder and decoder;
- auxiliary reconstruction: ‖x − (ReLU(π_gate) · sg(W_dec) + sg(b_dec))‖² through a frozen copy of
  the decoder (sg: no gradient), so that the gate's pre-activations keep the scale of the
  magnitudes they choose between and the penalty cannot shrink them for free.

ReLU(π_gate) is non-zero exactly on the open gates, which are the latents `select` picks, so both
terms are computed from the compact codes. Inference is the same gated product (no threshold to
learn, no difference between training and eval mode). SAELens names the tensors `b_gate`, `r_mag`,
`b_mag`; the native file stores `b_enc` (the gate's bias), `r_mag` and `b_mag`.

Initialisation: the encoder is the decoder's transpose (as for every architecture here) scaled by
2·d_in/d_sae, at most 1. With random unit decoder rows d_j and E‖x‖² = 1, about half the gates open
and Σ_j ReLU(x·d_j)·d_j ≈ (d_sae / 2·d_in)·x: unscaled, both reconstructions start that many times
too large (4× at the demo's 8× width), and the auxiliary term's first steps close nearly every
gate — for good, since a closed gate gets no gradient from any term (on the demo's data, 91% of
the latents were dead after 100 steps). Scaled, they start at about the input's size. Even so, the
L1 penalty at full strength from the first step closed half the gates within the first 70 steps on
the demo's data (L0 from ~1,200 to ~50); the trainer warms every sparsity penalty up from zero
(`saescope.train.schedule.sparsity_scale`), which keeps them open.

This module knows nothing about training loops or files.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..config.architectures import GatedParams
from ..kernels import sparse_decode
from .base import ArchitectureLoss, ForwardOutput, SAEConfig, SparseAutoencoder, indices_of_active
from .registry import register


def encoder_init_scale(d_in: int, d_sae: int) -> float:
    """The factor on the initial encoder (the decoder's transpose): 2·d_in/d_sae, at most 1."""
    return min(1.0, 2 * d_in / d_sae)


@register
class GatedSAE(SparseAutoencoder):
    architecture = "gated"
    Params = GatedParams
    params: GatedParams

    r_mag: nn.Parameter
    """[d_sae] log of each latent's magnitude rescale: the magnitude path's row j is exp(r_mag_j)·W_enc_j."""
    b_mag: nn.Parameter
    """[d_sae] the magnitude path's bias."""

    def __init__(
        self, cfg: SAEConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__(cfg, device=device, dtype=dtype)
        factory = {"device": device, "dtype": dtype or torch.float32}
        self.r_mag = nn.Parameter(torch.zeros(cfg.d_sae, **factory))  # type: ignore[arg-type]
        self.b_mag = nn.Parameter(torch.zeros(cfg.d_sae, **factory))  # type: ignore[arg-type]

    def select(self, pre_acts: Tensor) -> Tensor:
        """The open gates: π_gate > 0."""
        return indices_of_active(pre_acts)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        """1[π_gate > 0] · ReLU(exp(r_mag) · (π_gate − b_gate) + b_mag) at the selected latents."""
        dtype = selected_pre_acts.dtype
        shared = selected_pre_acts - self.b_enc[latent_indices].to(dtype)
        scale = self.r_mag[latent_indices].exp().to(dtype)
        magnitude = (scale * shared + self.b_mag[latent_indices].to(dtype)).relu()
        return magnitude * (selected_pre_acts > 0).to(dtype)

    def architecture_loss(self, x: Tensor, selected_pre_acts: Tensor, out: ForwardOutput) -> ArchitectureLoss:
        """The gate's L1 penalty and the auxiliary reconstruction through the frozen decoder (see the
        module docstring); `selected_pre_acts` are π_gate at `out.latent_indices`, every open gate
        among them."""
        gate = selected_pre_acts.relu()
        norms = self.W_dec.float().norm(dim=1)
        sparsity = self.params.gate_l1_coefficient * (gate.float() * norms[out.latent_indices]).sum(-1).mean()
        frozen = sparse_decode(gate, out.latent_indices, self.W_dec.detach(), impl=self.kernel)
        via_gate = frozen.float() + self.b_dec.detach().float()
        aux = (x.float() - via_gate).pow(2).sum(-1).mean()
        return ArchitectureLoss(sparsity, aux)

    @torch.no_grad()
    def initialize_extra(self) -> None:
        """r_mag = b_mag = 0 (the magnitudes start as the gate's pre-activations), and the encoder
        (the decoder's transpose) scaled by `encoder_init_scale` (see the module docstring)."""
        self.r_mag.zero_()
        self.b_mag.zero_()
        self.W_enc.mul_(encoder_init_scale(self.d_in, self.d_sae))

    def file_tensors(self) -> dict[str, Tensor]:
        return {**super().file_tensors(), "r_mag": self.r_mag.detach(), "b_mag": self.b_mag.detach()}

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        super().load_file_tensors(tensors)
        self.r_mag.copy_(tensors["r_mag"])
        self.b_mag.copy_(tensors["b_mag"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gate_l1_coefficient={self.params.gate_l1_coefficient}"
