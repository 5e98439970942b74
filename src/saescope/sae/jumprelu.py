"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"; Gemma Scope).

latents = pre_acts · H(pre_acts − θ) with a learned threshold θ_j per latent, parameterised as
`log_threshold` (θ = exp, so θ > 0) and saved as `threshold`. The step function has no useful
gradient, so training uses the paper's straight-through estimators with the rectangle kernel
K(u) = 1[|u| < 1/2] of bandwidth ε:

- JumpReLU output: ∂/∂θ = −(θ/ε)·K((z−θ)/ε), ∂/∂z = H(z−θ);
- L0 penalty Σ_j H(z_j − θ_j): ∂/∂θ = −(1/ε)·K((z−θ)/ε), to θ only (pre-activations detached).

The loss adds l0_coefficient · mean L0. ε, λ and the initial θ are the SAE's `Params`
(`jumprelu_bandwidth`, `l0_coefficient`, `jumprelu_init_threshold`), saved in its `cfg.json`.
Because K is non-zero on (θ − ε/2, θ + ε/2), in training mode `select` also picks latents with z in
(θ − ε/2, θ]: their activation is 0 but the estimator gives θ a gradient from them, exactly as the
dense formulation does.
This module knows nothing about training loops or files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..config.architectures import JumpReLUParams
from ..errors import SaescopeError
from .base import ForwardOutput, SAEConfig, SparseAutoencoder, indices_of_active
from .registry import register


def exact_log(threshold: Tensor, dtype: torch.dtype) -> Tensor:
    """log θ in `dtype`, moved by up to 2 ulps to where exp gives θ back most closely (exactly when
    some value can). Makes save → load bit-exact: a saved θ is exp of a stored log, found again here.
    """
    log = threshold.double().log().to(dtype)
    target = threshold.to(dtype).double()
    candidates = [log]
    for direction in (math.inf, -math.inf):
        c = log
        for _ in range(2):
            c = torch.nextafter(c, torch.full_like(c, direction))
            candidates.append(c)
    stacked = torch.stack(candidates)
    error = (stacked.exp().double() - target).abs().nan_to_num(nan=math.inf)
    best = error.argmin(dim=0, keepdim=True)  # ties go to the first candidate, the plain log
    return stacked.gather(0, best).squeeze(0)


def rectangle(u: Tensor) -> Tensor:
    """K(u) = 1 where |u| < 1/2, else 0."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFn(torch.autograd.Function):
    """z · H(z − θ) with the straight-through estimator for θ (elementwise; θ shaped like z)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad * (z > threshold).to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_threshold = None
        if ctx.needs_input_grad[1]:
            zf, tf = z.float(), threshold.float()
            grad_threshold = (-(tf / eps) * rectangle((zf - tf) / eps) * grad.float()).to(threshold.dtype)
        return grad_z, grad_threshold, None


class StepFn(torch.autograd.Function):
    """H(z − θ) for z [N, d_sae] and θ [d_sae]; gradient to θ only: −(1/ε)·K((z−θ)/ε), summed over rows."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(threshold.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor | None, None]:  # type: ignore[override]
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        if not ctx.needs_input_grad[1]:
            return None, None, None
        tf = threshold.float()
        per_row = -(1.0 / eps) * rectangle((z.float() - tf) / eps) * grad.float()
        return None, per_row.reshape(-1, tf.shape[-1]).sum(0).to(threshold.dtype), None


@register
class JumpReLUSAE(SparseAutoencoder):
    architecture = "jumprelu"
    Params = JumpReLUParams
    params: JumpReLUParams

    def __init__(
        self, cfg: SAEConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__(cfg, device=device, dtype=dtype)
        initial = math.log(self.params.jumprelu_init_threshold)
        self.log_threshold = nn.Parameter(
            torch.full((cfg.d_sae,), initial, device=device, dtype=dtype or torch.float32)
        )

    @property
    def bandwidth(self) -> float:
        """ε of the straight-through estimators (`params.jumprelu_bandwidth`)."""
        return self.params.jumprelu_bandwidth

    @property
    def threshold(self) -> Tensor:
        """θ [d_sae] (differentiable: exp of `log_threshold`)."""
        return self.log_threshold.exp()

    def select(self, pre_acts: Tensor) -> Tensor:
        cutoff = self.threshold.to(pre_acts.dtype)
        if self.training:
            cutoff = cutoff - self.bandwidth / 2
        return indices_of_active(pre_acts - cutoff)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        theta = self.threshold[latent_indices].to(selected_pre_acts.dtype)
        out: Tensor = JumpReLUFn.apply(selected_pre_acts, theta, self.bandwidth)
        return out

    def l0(self, pre_acts: Tensor) -> Tensor:
        """Mean over rows of Σ_j H(z_j − θ_j), differentiable in θ only (straight-through)."""
        z = pre_acts.detach().reshape(-1, self.d_sae).float()
        steps: Tensor = StepFn.apply(z, self.threshold.float(), self.bandwidth)
        return steps.sum(-1).mean()

    def sparsity_loss(self, out: ForwardOutput) -> Tensor:
        return self.params.l0_coefficient * self.l0(out.pre_acts)

    @torch.no_grad()
    def initialize_extra(self) -> None:
        self.log_threshold.fill_(math.log(self.params.jumprelu_init_threshold))

    def file_tensors(self) -> dict[str, Tensor]:
        return {**super().file_tensors(), "threshold": self.threshold.detach()}

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        threshold = tensors["threshold"]
        if not bool((threshold >= 0).all()):
            raise SaescopeError("a JumpReLU threshold must be >= 0 (found negative or NaN entries)")
        super().load_file_tensors(tensors)
        # θ = 0 (log = −inf) is allowed: it is a plain ReLU for that latent.
        self.log_threshold.copy_(exact_log(threshold.to(self.log_threshold.device), self.log_threshold.dtype))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bandwidth={self.bandwidth}"
