"""ReLU SAE with an L1 penalty (Bricken et al. 2023, "Towards Monosemanticity"), with the
decoder-norm-weighted L1 of Anthropic's April 2024 update ("Circuits Updates — April 2024").

latents = ReLU(pre_acts); the penalty is l1_coefficient · mean over rows of Σ_j latent_j · ‖W_dec_j‖.
Weighting by the decoder-row norm makes the penalty invariant to trading scale between a latent's
activation and its decoder row, so the decoder needs no unit-norm constraint.
This module knows nothing about training loops or files.
"""

from __future__ import annotations

from torch import Tensor

from ..config.architectures import ReLUParams
from .base import ForwardOutput, SparseAutoencoder, indices_of_active
from .registry import register


@register
class ReLUSAE(SparseAutoencoder):
    architecture = "relu"
    Params = ReLUParams
    params: ReLUParams

    def select(self, pre_acts: Tensor) -> Tensor:
        return indices_of_active(pre_acts)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        return selected_pre_acts.relu()

    def sparsity_loss(self, out: ForwardOutput) -> Tensor:
        # From the compact form: only the active latents' norms are gathered ([N, K], not [N, d_sae]).
        norms = self.W_dec.float().norm(dim=1)
        weighted = out.latent_acts.float() * norms[out.latent_indices]
        return self.params.l1_coefficient * weighted.sum(-1).mean()
