"""The `triton` implementation of the kernel entry points: autograd Functions over Triton kernels.

- `sparse_encode`: the encoder GEMM stays cuBLAS (`addmm`, bias fused, bf16 under autocast); the
  caller's `select` picks the latents; backward is sparse: dW_enc rows and db_enc from one
  latent-major kernel over (x − b_dec) saved in the GEMM's dtype, d b_dec = −W_enc·db_enc, dx by
  gathering encoder rows (only when x needs a gradient).
- `sparse_decode`: forward gathers decoder rows (`triton_sparse.gather_rows`); backward is one
  latent-major kernel giving dW_dec and d latent_acts together.
- `topk_indices` / `topk_indices_masked`: sample, filter, exact select on the candidates (`triton_topk`).

The encoder and decoder backward of one step share the sort of the latent ids (`latent_plan`).
Every kernel call falls back to the plain-torch path where Triton cannot run (`fallback`).
Gradients of weights come out in the weights' dtype, accumulated in fp32; the W_enc gradient is
built latent-major ([d_sae, d_in]) and returned transposed, matching W_enc's storage.

This module knows nothing about SAE architectures: callers pass `select`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import torch_sparse
from .fallback import run_with_fallback

Select = Callable[[Tensor], Tensor]


# ----- kernels with their plain-torch equivalents ---------------------------------------------
def _gather_rows(coef: Tensor, ids: Tensor, W: Tensor, out_dtype: torch.dtype) -> Tensor:
    def fast() -> Tensor:
        from .triton_sparse import gather_rows

        return gather_rows(coef, ids, W, out_dtype)

    def slow() -> Tensor:
        out = torch.nn.functional.embedding_bag(ids, W.float(), per_sample_weights=coef.float(), mode="sum")
        return out.to(out_dtype)

    return run_with_fallback("gather_rows", W.device, fast, slow)


def _latent_rows(
    ids: Tensor, n: int, coef: Tensor, Y: Tensor, out_dtype: torch.dtype, with_sums: bool, W: Tensor | None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    def fast() -> tuple[Tensor, Tensor | None, Tensor | None]:
        from .triton_sparse import latent_plan, latent_rows

        res = latent_rows(latent_plan(ids, n), coef, Y, out_dtype, with_sums=with_sums, W=W)
        return res.rows, res.coef_sums, res.dots

    def slow() -> tuple[Tensor, Tensor | None, Tensor | None]:
        c = coef.float()
        rows = (torch_sparse.latent_major(ids, c, n) @ Y.float()).to(out_dtype)
        sums = torch.zeros(n, dtype=torch.float32, device=c.device).index_add_(
            0, ids.reshape(-1), c.reshape(-1)
        )
        dots = torch_sparse.sampled_rows_dot(Y.float(), W.float(), ids) if W is not None else None
        return rows, sums if with_sums else None, dots

    return run_with_fallback("latent_rows", Y.device, fast, slow)


def topk_indices(pre_acts: Tensor, k: int) -> Tensor:
    """Ids [..., k] (int64) of the k largest entries of each row (no sort; ties: see triton_topk)."""

    def fast() -> Tensor:
        from .triton_topk import topk_indices as triton_topk

        return triton_topk(pre_acts, k)

    def slow() -> Tensor:
        return pre_acts.topk(k, dim=-1, sorted=False).indices

    return run_with_fallback("topk", pre_acts.device, fast, slow)


def topk_indices_masked(pre_acts: Tensor, k: int, mask: Tensor) -> Tensor:
    """Ids [..., k] of the k largest entries among the columns where `mask` [n] (bool) is True.

    Aux-k: equals `pre_acts.masked_fill(~mask, -inf).topk(k).indices` up to ties; when fewer than k
    columns are allowed, the rest are filled with disallowed columns (from a per-row offset).
    """

    def fast() -> Tensor:
        from .triton_topk import topk_indices as triton_topk

        return triton_topk(pre_acts, k, mask=mask)

    def slow() -> Tensor:
        return pre_acts.masked_fill(~mask, float("-inf")).topk(k, dim=-1, sorted=False).indices

    return run_with_fallback("topk_masked", pre_acts.device, fast, slow)


# ----- autograd -------------------------------------------------------------------------------
def _gemm_dtype(x: Tensor) -> torch.dtype:
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class TritonSparseEncodeFn(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Select
    ) -> tuple[Tensor, Tensor, Tensor]:
        dtype = _gemm_dtype(x)
        # x − b_dec once, in the GEMM's dtype: the GEMM's operand and the encoder gradient's rows.
        centered = (x - b_dec).to(dtype)
        pre_acts = torch.addmm(b_enc.to(dtype), centered, W_enc.to(dtype))
        latent_indices = select(pre_acts)
        selected = pre_acts.gather(-1, latent_indices)
        ctx.save_for_backward(centered, W_enc, latent_indices)
        ctx.dtypes = (x.dtype, b_enc.dtype, b_dec.dtype)
        ctx.mark_non_differentiable(latent_indices, pre_acts)
        return selected, latent_indices, pre_acts

    @staticmethod
    def backward(ctx: Any, grad_selected: Tensor, _g_idx: Tensor, _g_pre: Tensor):  # type: ignore[override]
        centered, W_enc, latent_indices = ctx.saved_tensors
        x_dtype, b_enc_dtype, b_dec_dtype = ctx.dtypes
        need_x, need_W, need_b_enc, need_b_dec = ctx.needs_input_grad[:4]
        d_sae = W_enc.shape[1]
        g = grad_selected.float().contiguous()
        grad_x = grad_W_enc = grad_b_enc = grad_b_dec = None
        with torch.autocast(g.device.type, enabled=False):
            if need_W:
                rows, grad_b_enc, _ = _latent_rows(
                    latent_indices, d_sae, g, centered, W_enc.dtype, True, None
                )
                grad_W_enc = rows.t()
            elif need_b_enc or need_b_dec:
                grad_b_enc = torch.zeros(d_sae, dtype=torch.float32, device=g.device)
                grad_b_enc.index_add_(0, latent_indices.reshape(-1), g.reshape(-1))
            if need_b_dec:
                assert grad_b_enc is not None
                grad_b_dec = (-(W_enc.float() @ grad_b_enc)).to(b_dec_dtype)
            if need_x:
                grad_x = _gather_rows(g, latent_indices, W_enc.t(), x_dtype)
        if grad_b_enc is not None:
            grad_b_enc = grad_b_enc.to(b_enc_dtype) if need_b_enc else None
        return grad_x, grad_W_enc, grad_b_enc, grad_b_dec, None


class TritonSparseDecodeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(latent_acts, latent_indices, W_dec)
        # Under autocast the backward gathers the output gradient rows in the autocast dtype, as a
        # dense bf16 decoder GEMM's backward would read them: half the bytes, and the [N, d_in]
        # gradient then fits in L2 (d_in 2048, N 8192: 32 MB) for the N·K row gathers.
        ctx.grad_dtype = (
            _gemm_dtype(latent_acts) if torch.is_autocast_enabled(latent_acts.device.type) else None
        )
        return _gather_rows(latent_acts, latent_indices, W_dec, W_dec.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor):  # type: ignore[override]
        latent_acts, latent_indices, W_dec = ctx.saved_tensors
        need_acts, _, need_W = ctx.needs_input_grad
        grad_acts = grad_W_dec = None
        if ctx.grad_dtype is not None:
            grad_out = grad_out.to(ctx.grad_dtype)
        if need_acts or need_W:
            with torch.autocast(grad_out.device.type, enabled=False):
                rows, _, dots = _latent_rows(
                    latent_indices,
                    W_dec.shape[0],
                    latent_acts,
                    grad_out,
                    W_dec.dtype,
                    False,
                    W_dec if need_acts else None,
                )
            grad_W_dec = rows if need_W else None
            grad_acts = dots.to(latent_acts.dtype) if dots is not None else None
        return grad_acts, None, grad_W_dec


def sparse_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, select: Select
) -> tuple[Tensor, Tensor, Tensor]:
    """See `saescope.kernels.sparse_encode` (x [N, d_in]); pre_acts come out in the GEMM's dtype."""
    selected, latent_indices, pre_acts = TritonSparseEncodeFn.apply(x, W_enc, b_enc, b_dec, select)
    return selected, latent_indices, pre_acts


def sparse_decode(latent_acts: Tensor, latent_indices: Tensor, W_dec: Tensor) -> Tensor:
    """See `saescope.kernels.sparse_decode` (2-D latent_acts / latent_indices [N, K])."""
    out: Tensor = TritonSparseDecodeFn.apply(latent_acts, latent_indices, W_dec)
    return out
