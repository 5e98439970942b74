"""The hot operations of an SAE, each with interchangeable implementations.

- `sparse_encode`: pre-activations, selection of the active latents, and a backward pass that
  touches only the selected latents' encoder rows (no dense [N, d_sae] gradient).
- `sparse_decode`: sum of the active latents' decoder rows, with a sparse backward.
- `topk_indices`: the k largest pre-activations of each row (and `topk_indices_masked`, among
  some columns only: the dead latents of the aux-k loss).

Implementations (`impl`):
- `reference`: dense plain-torch autograd (the oracle in tests; what most seed code does);
- `torch`: sparse plain-torch autograd Functions (the CPU fast path, and the GPU fallback);
- `triton`: fused Triton kernels on CUDA (falls back to `torch` where Triton is unavailable).

This package knows nothing about SAE architectures, losses or training loops: callers pass a
`select` function that picks the active latents from the pre-activations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import reference, torch_sparse

IMPLS = ("reference", "torch", "triton")
Select = Callable[[Tensor], Tensor]


def resolve_impl(impl: str, device: torch.device) -> str:
    """`auto` -> `triton` on CUDA when Triton imports, else `torch`; `triton` off CUDA -> `torch`."""
    if impl == "auto":
        impl = "triton"
    if impl == "triton" and not (device.type == "cuda" and triton_available()):
        return "torch"
    if impl not in IMPLS:
        raise ValueError(f"unknown kernel implementation {impl!r}; choose from {', '.join(IMPLS)}")
    return impl


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def sparse_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Select, impl: str = "reference"
) -> tuple[Tensor, Tensor, Tensor]:
    """Selected pre-activations of x [N, d_in].

    Returns `(selected [N, K], latent_indices [N, K], pre_acts [N, d_sae])` where
    `pre_acts = (x - b_dec) @ W_enc + b_enc`, `latent_indices = select(pre_acts)` and
    `selected = pre_acts.gather(-1, latent_indices)`. Gradients flow into x, W_enc, b_enc and b_dec
    through `selected` only (`pre_acts` carries a gradient only with `impl="reference"`).
    """
    impl = resolve_impl(impl, x.device)
    if impl == "reference":
        return reference.sparse_encode(x, W_enc, b_enc, b_dec, select)
    if impl == "triton":
        from . import triton_ops

        return triton_ops.sparse_encode(x, W_enc, b_enc, b_dec, select)
    return torch_sparse.sparse_encode(x, W_enc, b_enc, b_dec, select)


def sparse_decode(
    latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor, impl: str = "reference"
) -> Tensor:
    """sum_j latent_acts[..., j] * W_dec[latent_indices[..., j]] -> [..., d_in] (no bias)."""
    lead = latent_acts.shape[:-1]
    acts = latent_acts.reshape(-1, latent_acts.shape[-1])
    idx = latent_indices.reshape(-1, latent_indices.shape[-1])
    impl = resolve_impl(impl, acts.device)
    if impl == "reference":
        out = reference.sparse_decode(acts, idx, W_dec)
    elif impl == "triton":
        from . import triton_ops

        out = triton_ops.sparse_decode(acts, idx, W_dec)
    else:
        out = torch_sparse.sparse_decode(acts, idx, W_dec)
    return out.reshape(*lead, W_dec.shape[1])


def topk_indices(pre_acts: Tensor, k: int, impl: str = "reference") -> Tensor:
    """Ids [N, k] of the k largest entries of each row (order unspecified, ties broken arbitrarily)."""
    impl = resolve_impl(impl, pre_acts.device)
    if impl == "triton":
        from . import triton_ops

        return triton_ops.topk_indices(pre_acts, k)
    return pre_acts.topk(k, dim=-1, sorted=False).indices


def topk_indices_masked(pre_acts: Tensor, k: int, mask: Tensor, impl: str = "reference") -> Tensor:
    """Ids [N, k] of the k largest entries of each row among the columns where `mask` [d_sae] is true.

    Used by the aux-k loss (the k_aux largest pre-activations of dead latents); needs k <= mask.sum().
    """
    impl = resolve_impl(impl, pre_acts.device)
    if impl == "triton":
        from . import triton_ops

        return triton_ops.topk_indices_masked(pre_acts, k, mask)
    return pre_acts.masked_fill(~mask, float("-inf")).topk(k, dim=-1, sorted=False).indices
