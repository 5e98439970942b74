"""BatchTopK SAE (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders").

Training (`self.training`): of the whole batch's ReLU(pre_acts), the k·N largest are kept, so rows
get a variable number of latents that averages k. Inference (`not self.training`): a latent fires
where pre_acts > θ, with value pre_acts — a JumpReLU with one threshold shared by every latent,
which is how SAELens exports a BatchTopK SAE.

θ (buffer `threshold [d_sae]`, all entries equal) estimates the smallest activation BatchTopK keeps:
each training step reports the smallest kept activation of its batch, and θ is the running mean
of those for the first 1/m steps, an exponential moving average with weight m after, where m is the
hyperparameter `batchtopk_threshold_momentum` (SAELens and the paper's code use that EMA with
m = 0.01, started from 0; the running-mean start removes the bias of starting from 0 in short runs).

This module knows nothing about training loops or files.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..config.architectures import BatchTopKParams
from .base import ForwardOutput, SAEConfig, SparseAutoencoder, indices_of_active
from .registry import register


@register
class BatchTopKSAE(SparseAutoencoder):
    architecture = "batchtopk"
    takes_k = True
    Params = BatchTopKParams
    params: BatchTopKParams

    threshold: Tensor
    threshold_steps: Tensor

    def __init__(
        self, cfg: SAEConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__(cfg, device=device, dtype=dtype)
        self.register_buffer("threshold", torch.zeros(cfg.d_sae, device=device, dtype=dtype or torch.float32))
        # Batches averaged into θ so far (a buffer so checkpoints resume the same average).
        self.register_buffer("threshold_steps", torch.zeros((), device=device, dtype=torch.int64))

    def select(self, pre_acts: Tensor) -> Tensor:
        if not self.training:
            return indices_of_active(pre_acts - self.threshold.to(pre_acts.dtype))
        acts = pre_acts.relu()
        flat = acts.flatten()
        keep = flat.topk(min(self.k * acts.shape[0], flat.numel()), sorted=False).indices
        kept = torch.zeros_like(flat).scatter_(0, keep, flat[keep]).view_as(acts)
        return indices_of_active(kept)

    def activate(self, selected_pre_acts: Tensor, latent_indices: Tensor) -> Tensor:
        if not self.training:
            return selected_pre_acts * (
                selected_pre_acts > self.threshold[latent_indices].to(selected_pre_acts.dtype)
            )
        # The kept activations are the k·N largest of the batch, and every padding slot holds a value
        # no larger than the smallest kept one, so the k·N largest of the selected values are exactly
        # the kept ones: recomputing them here keeps `select` and `activate` free of shared state.
        acts = selected_pre_acts.relu()
        with torch.no_grad():
            flat = acts.detach().flatten()
            keep = flat.topk(min(self.k * acts.shape[0], flat.numel()), sorted=False).indices
            mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(0, keep, True).view_as(acts)
        return acts * mask

    def sparsity_loss(self, out: ForwardOutput) -> Tensor:
        """0 (k fixes the sparsity). In training mode this is also where θ learns from the batch:
        every training objective calls it exactly once per step with the step's output."""
        if self.training:
            self.update_threshold(out.latent_acts)
        return out.recon.new_zeros(())

    @torch.no_grad()
    def update_threshold(self, latent_acts: Tensor) -> None:
        """Fold the smallest positive activation of a training batch into θ (see module docstring).

        Pure tensor ops, so a step on the GPU never waits for the host.
        """
        acts = latent_acts.detach().float()
        smallest = acts.masked_fill(acts <= 0, float("inf")).min()
        seen = torch.isfinite(smallest)
        steps = self.threshold_steps + seen.long()
        momentum = self.params.batchtopk_threshold_momentum
        weight = (1.0 / steps.clamp_min(1).double()).clamp_min(momentum).float()
        current = self.threshold.float()
        update = torch.where(seen, weight * (smallest - current), torch.zeros_like(current))
        self.threshold.copy_(current + update)
        self.threshold_steps.copy_(steps)

    def initialize_extra(self) -> None:
        self.threshold.zero_()
        self.threshold_steps.zero_()

    def file_tensors(self) -> dict[str, Tensor]:
        return {**super().file_tensors(), "threshold": self.threshold.detach()}

    @torch.no_grad()
    def load_file_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        super().load_file_tensors(tensors)
        self.threshold.copy_(tensors["threshold"])
        # A saved θ is a finished estimate: further training continues it as an EMA.
        self.threshold_steps.fill_(round(1 / self.params.batchtopk_threshold_momentum))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={float(self.threshold[0]):.4g}"
