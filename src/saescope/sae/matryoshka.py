"""Matryoshka BatchTopK SAE (Bussmann, Nabeshima, Karvonen & Nanda 2025, "Learning Multi-Level
Features with Matryoshka Sparse Autoencoders"; Nabeshima 2025, "Matryoshka Sparse Autoencoders").

The latents are split into nested groups (`matryoshka_groups`: each group's share, in order); the
prefixes of groups — the first group, the first two, …, all — are dictionaries of widths
w_1 < w_2 < … < w_M = d_sae. Training adds the reconstruction error of every prefix:

    loss = Σ_m ‖x − x̂_m‖²,   x̂_m = Σ_{active j < w_m} a_j · W_dec_j + b_dec

(mean over rows), so the first latents must reconstruct on their own and general features stay
in the early groups instead of being absorbed by more specific later ones. x̂_M is the SAE's
reconstruction (the trainer's `recon_loss`); the M − 1 inner prefixes are `extra_loss`, summed
unweighted as SAELens and the paper do. Latents are selected as in BatchTopK (the k·N largest of
the batch, one selection for every prefix), and inference is BatchTopK's too: a JumpReLU with the
shared threshold θ learnt in training (SAELens saves a Matryoshka SAE the same way).

This module knows nothing about training loops or files.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config.architectures import MatryoshkaParams
from ..kernels import sparse_decode
from .base import ArchitectureLoss, ForwardOutput, SAEConfig
from .batchtopk import BatchTopKSAE
from .registry import register


@register
class MatryoshkaSAE(BatchTopKSAE):
    architecture = "matryoshka"
    takes_k = True
    Params = MatryoshkaParams
    params: MatryoshkaParams

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        super().check_config(cfg)
        params = MatryoshkaParams.from_dict(cfg.hyperparams, cfg.architecture)
        params.prefix_widths(cfg.d_sae)  # every group gets a latent

    @property
    def prefix_widths(self) -> tuple[int, ...]:
        """The widths of the nested prefixes of groups, the last being `d_sae`."""
        return self.params.prefix_widths(self.d_sae)

    def prefix_losses(self, x: Tensor, out: ForwardOutput) -> Tensor:
        """‖x − x̂_m‖² (mean over rows) of each inner prefix m < M ([M − 1], float32), from the
        compact codes: each group's part of the reconstruction is decoded once and added on."""
        widths = self.prefix_widths[:-1]
        losses = []
        recon = self.b_dec.float().expand_as(x)
        target = x.float()
        if widths:
            group = torch.bucketize(
                out.latent_indices.contiguous(), torch.tensor(widths, device=x.device), right=True
            )
        for m in range(len(widths)):
            part = out.latent_acts * (group == m).to(out.latent_acts.dtype)
            recon = recon + sparse_decode(part, out.latent_indices, self.W_dec, impl=self.kernel).float()
            losses.append((target - recon).pow(2).sum(-1).mean())
        return torch.stack(losses) if losses else target.new_zeros((0,))

    def architecture_loss(self, x: Tensor, selected_pre_acts: Tensor, out: ForwardOutput) -> ArchitectureLoss:
        """BatchTopK's (no penalty; θ learns from the batch) and the inner prefixes' errors."""
        own = super().architecture_loss(x, selected_pre_acts, out)
        return own._replace(extra_loss=self.prefix_losses(x, out).sum())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, prefixes={list(self.prefix_widths)}"
