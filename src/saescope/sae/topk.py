"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

latents = TopK_k(ReLU(pre_acts)): exactly k latents per token, so sparsity needs no penalty and the
architecture has no hyperparameter of its own besides k (`SAEConfig.k`).
This module knows nothing about training loops or files.
"""

from __future__ import annotations

from torch import Tensor

from ..kernels import topk_indices
from .base import SparseAutoencoder
from .registry import register


@register
class TopKSAE(SparseAutoencoder):
    architecture = "topk"
    takes_k = True

    def select(self, pre_acts: Tensor) -> Tensor:
        return topk_indices(pre_acts, self.k, impl=self.kernel)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        return selected_pre_acts.relu()
