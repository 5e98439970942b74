"""Dense plain-torch versions of the kernels: the oracle every fast path is tested against.

They materialise the dense [N, d_sae] latent matrix and let autograd differentiate through it,
as most SAE code does. Nothing here is clever; that is the point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def sparse_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    pre_acts = (x - b_dec) @ W_enc + b_enc
    with torch.no_grad():
        latent_indices = select(pre_acts.detach())
    return pre_acts.gather(-1, latent_indices), latent_indices, pre_acts


def sparse_decode(latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor) -> Tensor:
    dense = latent_acts.new_zeros(latent_acts.shape[0], W_dec.shape[0])
    dense = dense.scatter(-1, latent_indices, latent_acts)
    return dense.to(W_dec.dtype) @ W_dec
