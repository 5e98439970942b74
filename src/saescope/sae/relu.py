"""ReLU SAE with an L1 penalty (Bricken et al. 2023, "Towards Monosemanticity"), with the
decoder-norm-weighted L1 of Anthropic's April 2024 update ("Circuits Updates — April 2024").

latents = ReLU(pre_acts); the penalty is l1_coefficient · mean over rows of Σ_j latent_j · ‖W_dec_j‖.
Weighting by the decoder-row norm makes the penalty invariant to trading scale between a latent's
activation and its decoder row, so the decoder needs no unit-norm constraint.
This module knows nothing about training loops or files.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..errors import require
from .base import ForwardOutput, Hyperparams, SparseAutoencoder, indices_of_active, is_real, option
from .registry import register


@dataclass(frozen=True)
class ReLUParams(Hyperparams):
    """Hyperparameters of the ReLU SAE."""

    l1_coefficient: float = 0.2
    """ReLU SAE: weight λ of the L1 penalty on activations × decoder-row norms (Anthropic, Towards
    Monosemanticity and its April 2024 update). Inputs are scaled to E‖x‖² = 1 here, so Anthropic's
    λ = 5 (at E‖x‖² = d_in) corresponds to 5/√d_in."""

    def __post_init__(self) -> None:
        require(
            is_real(self.l1_coefficient) and self.l1_coefficient >= 0,
            f"{option('l1_coefficient')} must be >= 0, got {self.l1_coefficient!r}",
        )


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
