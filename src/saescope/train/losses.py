"""The training objective of an SAE, as a module (so DDP can wrap it).

loss = ‖y − ŷ‖² (mean over rows)  +  architecture penalty (L1 / L0)  +  aux-k loss
       +  the architecture's other terms (Matryoshka's nested prefixes, gated's auxiliary term).

y is x for an SAE, the module's output for a transcoder (whose ŷ adds its skip path).
The architecture's terms are its own business (`SparseAutoencoder.architecture_loss`, from its own
hyperparameters); the aux-k loss is the trainer's, set here (`AuxK`).
The aux-k loss (Gao et al. 2024, appendix A.2) gives dead latents a gradient: the
k_aux largest pre-activations among dead latents reconstruct the main residual e = x − x̂, and
‖e − ê‖² / ‖e − mean(e)‖² is added with weight `aux_coefficient`, scaled down while fewer than
k_aux latents are dead. The dead latents are selected inside the SAE's `select`, so their
gradient takes the same sparse path as the main latents (no dense [N, d_sae] gradient).

Knows nothing about data sources, optimisers or logging.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..kernels import sparse_decode, sparse_encode, topk_indices_masked
from ..sae.base import ForwardOutput, LossTerms, SparseAutoencoder, fvu


class AuxK(NamedTuple):
    """The aux-k loss's settings (Gao et al. 2024, appendix A.2)."""

    k: int = 0
    """Dead latents that reconstruct the residual (0: no aux-k loss)."""
    coefficient: float = 1 / 32
    """Its weight in the loss (Gao et al.: 1/32)."""


class StepOutput(NamedTuple):
    terms: LossTerms
    """The loss and its parts."""
    out: ForwardOutput
    """The SAE's reconstruction and codes for the batch."""


class SAEObjective(nn.Module):
    """forward(x, dead_mask, num_dead, target, sparsity_scale) -> StepOutput for one SAE.

    `num_dead` is the host-side count of `dead_mask` (the trainer refreshes it now and then, so the
    step does not wait on the GPU to learn it). `target` is what is reconstructed: None for x itself
    (an SAE), the module's output for a transcoder. `sparsity_scale` multiplies the architecture's
    sparsity penalty (the trainer's warm-up, `schedule.sparsity_scale`; 1: full strength).
    """

    def __init__(self, sae: SparseAutoencoder, aux_k: AuxK | None = None):
        super().__init__()
        self.sae = sae
        self.aux_k = aux_k or AuxK()

    def forward(
        self,
        x: Tensor,
        dead_mask: Tensor | None = None,
        num_dead: int = 0,
        target: Tensor | None = None,
        sparsity_scale: float = 1.0,
    ) -> StepOutput:
        sae, settings = self.sae, self.aux_k
        y = x if target is None else target
        k_aux = min(settings.k, num_dead) if dead_mask is not None else 0
        n_main = 0

        def select(pre_acts: Tensor) -> Tensor:
            nonlocal n_main
            main = sae.select(pre_acts)
            n_main = main.shape[-1]
            if k_aux == 0:
                return main
            assert dead_mask is not None
            return torch.cat([main, topk_indices_masked(pre_acts, k_aux, dead_mask, impl=sae.kernel)], dim=-1)

        selected, indices, pre_acts = sparse_encode(
            x, sae.W_enc, sae.b_enc, sae.input_offset(), select, impl=sae.kernel
        )
        latent_acts = sae.activate(selected[:, :n_main], indices[:, :n_main])
        latent_indices = indices[:, :n_main]
        recon = sae.decode(latent_acts, latent_indices)
        direct = sae.direct_path(x)
        if direct is not None:
            recon = recon + direct
        out = ForwardOutput(recon, latent_acts, latent_indices, pre_acts)

        err = y.float() - recon.float()
        recon_loss = err.pow(2).sum(-1).mean()
        own = sae.architecture_loss(x, selected[:, :n_main], out)
        if k_aux > 0:
            assert dead_mask is not None
            # `num_dead` is refreshed only now and then, so latents revived since may be among the
            # k_aux picked: only the ones still dead take part.
            still_dead = dead_mask[indices[:, n_main:]].to(selected.dtype)
            aux_acts = selected[:, n_main:].relu() * still_dead
            aux_recon = sparse_decode(aux_acts, indices[:, n_main:], sae.W_dec, impl=sae.kernel).float()
            residual = err.detach()
            total = (residual - residual.mean(0, keepdim=True)).pow(2).sum().clamp_min(1e-12)
            scale = min(num_dead / settings.k, 1.0)
            aux = settings.coefficient * scale * (aux_recon - residual).pow(2).sum() / total
        else:
            aux = recon_loss.new_zeros(())
        with torch.no_grad():
            batch_fvu = fvu(y, recon)
            l0 = (latent_acts > 0).sum(-1).float().mean()
        sparsity = own.sparsity_loss * sparsity_scale
        loss = recon_loss + sparsity + aux + own.extra_loss
        terms = LossTerms(loss, recon_loss, sparsity, aux, own.extra_loss, batch_fvu, l0)
        return StepOutput(terms, out)
