"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

latents = TopK_k(ReLU(pre_acts)): exactly k latents per token, so sparsity needs no penalty and the
architecture has no hyperparameter of its own besides k (`SAEConfig.k`).
This module knows nothing about training loops or files.
"""

from __future__ import annotations

from torch import Tensor

from ..errors import require
from ..kernels import topk_indices
from .base import SAEConfig, SparseAutoencoder
from .registry import register


def check_k(cfg: SAEConfig) -> None:
    """k is required and lies in [1, d_sae] (TopK and BatchTopK)."""
    require(cfg.k is not None, f"a {cfg.architecture} SAE needs k (active latents per token)")
    assert cfg.k is not None
    require(1 <= cfg.k <= cfg.d_sae, f"k must be in [1, latents={cfg.d_sae}], got {cfg.k}")


@register
class TopKSAE(SparseAutoencoder):
    architecture = "topk"
    takes_k = True

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        super().check_config(cfg)
        check_k(cfg)

    @property
    def k(self) -> int:
        assert self.cfg.k is not None, "a TopK SAE needs k"
        return self.cfg.k

    def select(self, pre_acts: Tensor) -> Tensor:
        return topk_indices(pre_acts, self.k, impl=self.kernel)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        return selected_pre_acts.relu()
