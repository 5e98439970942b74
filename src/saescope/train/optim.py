"""One optimisation step of an SAE: clipping, then Adam with the unit-norm decoder, in one call.

Unit-norm decoder with gradient projection (OpenAI, Gao et al. 2024): before the update, each decoder
row's gradient loses its component along the row; after it, the rows are rescaled to unit norm.
`FusedAdam` (saescope.kernels) does projection + Adam/AdamW + renormalisation in one pass per
tensor — Triton on CUDA, the same math in plain torch elsewhere — so every device follows one
code path. The global gradient norm is clipped before that (so on the unprojected gradient).
Knows nothing about losses or data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..kernels.fused_adam import FusedAdam
from ..sae.base import SparseAutoencoder


class SAEOptimizer:
    """step(lr): clip the gradient norm, then FusedAdam (projection → Adam/AdamW → renorm)."""

    def __init__(
        self,
        sae: SparseAutoencoder,
        *,
        kind: str,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        grad_clip: float,
    ):
        self.grad_clip = grad_clip
        self.params = [p for p in sae.parameters() if p.requires_grad]
        self.opt = FusedAdam(
            self.params,
            lr=1e-4,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=kind == "adamw",
            decoder=sae.W_dec,
        )

    def step(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def state_tensors(self) -> dict[str, Tensor]:
        """Adam's moments and step counts as flat tensors, in each parameter's memory layout."""
        return self.opt.state_tensors()

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.opt.load_state_tensors(tensors)
