"""Sparse plain-torch autograd Functions: the CPU fast path and the GPU fallback.

A TopK SAE step touches N·k latents, not N·d_sae. These Functions keep it that way:

- encoder backward: dW_enc = Gᵀ·(x − b_dec) with G the [N, d_sae] gradient that has only N·k
  non-zeros, done as a sparse (latent-major CSR) × dense product; no dense G is ever built;
- decoder forward: embedding_bag over the active decoder rows;
- decoder backward: d latent_acts = (grad · W_decᵀ) sampled at the active positions only
  (`torch.sparse.sampled_addmm`), dW_dec = Aᵀ·grad as a sparse × dense product;
- when a batch has so many active latents per row that dense products are faster (DENSE_RATIO),
  the same gradients are computed through a dense [N, d_sae] matrix.

Gradients of weights are computed in float32 whatever the forward ran in.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int], check_invariants: bool) -> Tensor:
    """torch.sparse_csr_tensor without its "beta" warning on every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=check_invariants)


def latent_major(latent_indices: Tensor, values: Tensor, d_sae: int) -> Tensor:
    """The [d_sae, N] sparse CSR matrix M with M[latent_indices[b, s], b] = values[b, s]."""
    n, k = latent_indices.shape
    flat = latent_indices.reshape(-1)
    order = torch.argsort(flat, stable=True)
    rows = torch.div(order, k, rounding_mode="floor")
    crow = torch.zeros(d_sae + 1, dtype=torch.int64, device=flat.device)
    crow[1:] = torch.bincount(flat, minlength=d_sae).cumsum(0)
    return _csr(crow, rows, values.reshape(-1)[order], size=(d_sae, n), check_invariants=False)


def sampled_rows_dot(a: Tensor, B: Tensor, latent_indices: Tensor) -> Tensor:
    """out[b, s] = a[b] · B[latent_indices[b, s]]  ->  [N, K], computing only those dot products."""
    n, k = latent_indices.shape
    if a.device.type == "cpu":
        crow = torch.arange(0, n * k + 1, k, device=a.device)
        mask = _csr(
            crow,
            latent_indices.reshape(-1),
            torch.zeros(n * k, dtype=a.dtype, device=a.device),
            size=(n, B.shape[0]),
            check_invariants=False,
        )
        return torch.sparse.sampled_addmm(mask, a, B.t()).values().view(n, k)
    # On CUDA, a batched gather is cheap enough and avoids cuSPARSE's dtype limits.
    return torch.bmm(B[latent_indices], a.unsqueeze(-1)).squeeze(-1)


# With K active slots out of d_sae, the sparse products cost ~N·K·d_in but run far below the dense
# GEMM's FLOP rate: once K reaches d_sae / DENSE_RATIO (early ReLU/JumpReLU training has thousands
# of active latents per row) the dense [N, d_sae] products are faster (benchmarks/train.py).
DENSE_RATIO = 16


def dense_is_cheaper(k: int, d_sae: int) -> bool:
    return k * DENSE_RATIO >= d_sae


def scatter_dense(latent_indices: Tensor, values: Tensor, d_sae: int) -> Tensor:
    """The dense [N, d_sae] matrix with `values` at `latent_indices` (repeated ids add up)."""
    out = torch.zeros(latent_indices.shape[0], d_sae, dtype=values.dtype, device=values.device)
    return out.scatter_add_(1, latent_indices, values)


class SparseEncodeFn(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Callable[[Tensor], Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        centered = x - b_dec
        pre_acts = centered @ W_enc + b_enc
        latent_indices = select(pre_acts)
        selected = pre_acts.gather(-1, latent_indices)
        ctx.save_for_backward(centered, W_enc, latent_indices)
        ctx.mark_non_differentiable(latent_indices, pre_acts)
        return selected, latent_indices, pre_acts

    @staticmethod
    def backward(ctx: Any, grad_selected: Tensor, _g_idx: Tensor, _g_pre: Tensor):  # type: ignore[override]
        centered, W_enc, latent_indices = ctx.saved_tensors
        g = grad_selected.float()
        d_sae = W_enc.shape[1]
        grad_x = grad_W_enc = grad_b_enc = grad_b_dec = None
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            grad_b_enc = torch.zeros(d_sae, dtype=torch.float32, device=g.device)
            grad_b_enc.index_add_(0, latent_indices.reshape(-1), g.reshape(-1))
        dense = scatter_dense(latent_indices, g, d_sae) if dense_is_cheaper(g.shape[1], d_sae) else None
        if ctx.needs_input_grad[1]:
            # Latent-major [d_sae, d_in], returned transposed to match W_enc's storage.
            rows = latent_major(latent_indices, g, d_sae) if dense is None else dense.t()
            grad_W_enc = (rows @ centered.float()).t()
        if ctx.needs_input_grad[3]:
            assert grad_b_enc is not None
            grad_b_dec = -(W_enc.float() @ grad_b_enc)
        if ctx.needs_input_grad[0]:
            if dense is not None:
                grad_x = (dense @ W_enc.t().float()).to(centered.dtype)
            else:
                grad_x = torch.nn.functional.embedding_bag(
                    latent_indices, W_enc.t().float(), per_sample_weights=g, mode="sum"
                ).to(centered.dtype)
        return (
            grad_x,
            None if grad_W_enc is None else grad_W_enc.to(W_enc.dtype),
            None if grad_b_enc is None or not ctx.needs_input_grad[2] else grad_b_enc,
            grad_b_dec,
            None,
        )


class SparseDecodeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor) -> Tensor:  # type: ignore[override]
        weights = latent_acts.to(W_dec.dtype)
        ctx.save_for_backward(weights, latent_indices, W_dec)
        ctx.acts_dtype = latent_acts.dtype
        if dense_is_cheaper(latent_indices.shape[1], W_dec.shape[0]):
            return scatter_dense(latent_indices, weights, W_dec.shape[0]) @ W_dec
        return torch.nn.functional.embedding_bag(
            latent_indices, W_dec, per_sample_weights=weights, mode="sum"
        )

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor):  # type: ignore[override]
        weights, latent_indices, W_dec = ctx.saved_tensors
        g = grad_out.float()
        d_sae = W_dec.shape[0]
        dense = dense_is_cheaper(latent_indices.shape[1], d_sae)
        grad_acts = grad_W_dec = None
        if ctx.needs_input_grad[0]:
            if dense:
                grad_acts = (g @ W_dec.float().t()).gather(1, latent_indices).to(ctx.acts_dtype)
            else:
                grad_acts = sampled_rows_dot(g, W_dec.float(), latent_indices).to(ctx.acts_dtype)
        if ctx.needs_input_grad[2]:
            if dense:
                rows = scatter_dense(latent_indices, weights.float(), d_sae).t()
            else:
                rows = latent_major(latent_indices, weights.float(), d_sae)
            grad_W_dec = (rows @ g).to(W_dec.dtype)
        return grad_acts, None, grad_W_dec


def sparse_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    selected, latent_indices, pre_acts = SparseEncodeFn.apply(x, W_enc, b_enc, b_dec, select)
    return selected, latent_indices, pre_acts


def sparse_decode(latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor) -> Tensor:
    out: Tensor = SparseDecodeFn.apply(latent_acts, latent_indices, W_dec)
    return out
