"""Adam/AdamW update in Triton: one pass over each parameter tensor, fp32 arithmetic.

- `adam_flat`: elementwise update of a dense tensor (any layout whose storage is dense: the
  latent-major W_enc too), reading p, g, m, v once and writing p, m, v once.
- `adam_rows`: the same update for a decoder matrix [n, d], one program per row, fused with the
  two per-row steps of a unit-norm decoder (llama3_interpretability_sae; OpenAI's TopK SAE):
  before the update the gradient's component along the row is removed, after it the row is
  rescaled to unit norm. Three passes over the matrix become one. Rows longer than `block_d` take
  three sweeps of the row inside the program (sums, update, rescale) instead of holding it in registers.

The math is `torch.optim.Adam`'s (AdamW's with `decoupled=True`): bias-corrected moments,
denominator sqrt(v)/sqrt(1 − β2^t) + eps. The scalars that depend on the step count are computed by
the caller. This module knows nothing about optimizers' bookkeeping, SAEs or autograd.
"""

from __future__ import annotations

from typing import NamedTuple

import triton
import triton.language as tl
from torch import Tensor


class AdamScalars(NamedTuple):
    """Per-step scalars of the update (host floats)."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    step_size: float
    """lr / (1 − β1^t)."""
    bias_correction2_sqrt: float
    """sqrt(1 − β2^t)."""


class AdamConfig(NamedTuple):
    """Launch settings (register use checked for sm_90: no spills, several programs per SM)."""

    flat_block: int = 1024
    flat_warps: int = 4
    row_block_d: int = 8192
    """Rows up to this length are held in registers; longer rows are swept three times."""


DEFAULT_CONFIG = AdamConfig()


@triton.jit
def _moments_and_step(
    p, g, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt, DECAY: tl.constexpr
):
    """DECAY: 0 none, 1 L2 (Adam: added to the gradient), 2 decoupled (AdamW: shrinks p)."""
    if DECAY == 1:
        g = g + weight_decay * p
    if DECAY == 2:
        p = p * (1.0 - lr * weight_decay)
    m = m + (1.0 - beta1) * (g - m)
    v = beta2 * v + (1.0 - beta2) * g * g
    p = p - step_size * (m / (tl.sqrt(v) / bc2_sqrt + eps))
    return p, m, v


@triton.jit
def _adam_flat_kernel(
    p_ptr,
    g_ptr,
    m_ptr,
    v_ptr,
    numel,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    step_size,
    bc2_sqrt,
    DECAY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    p = tl.load(p_ptr + offs, mask=ok).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=ok).to(tl.float32)
    m = tl.load(m_ptr + offs, mask=ok).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=ok).to(tl.float32)
    p, m, v = _moments_and_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt, DECAY)
    tl.store(p_ptr + offs, p, mask=ok)
    tl.store(m_ptr + offs, m, mask=ok)
    tl.store(v_ptr + offs, v, mask=ok)


@triton.jit
def _adam_rows_kernel(
    p_ptr,
    g_ptr,
    m_ptr,
    v_ptr,
    d,
    stride_p,
    stride_g,
    stride_m,
    stride_v,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    step_size,
    bc2_sqrt,
    DECAY: tl.constexpr,
    PROJECT: tl.constexpr,
    RENORM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    ONE_TILE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    p_row = p_ptr + row * stride_p
    g_row = g_ptr + row * stride_g
    m_row = m_ptr + row * stride_m
    v_row = v_ptr + row * stride_v
    offs = tl.arange(0, BLOCK_D)
    if ONE_TILE:
        ok = offs < d
        p = tl.load(p_row + offs, mask=ok, other=0).to(tl.float32)
        g = tl.load(g_row + offs, mask=ok, other=0).to(tl.float32)
        m = tl.load(m_row + offs, mask=ok, other=0).to(tl.float32)
        v = tl.load(v_row + offs, mask=ok, other=0).to(tl.float32)
        if PROJECT:
            parallel = tl.sum(g * p, axis=0) / tl.maximum(tl.sum(p * p, axis=0), 1e-12)
            g = g - parallel * p
        p, m, v = _moments_and_step(
            p, g, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt, DECAY
        )
        if RENORM:
            p = p / tl.maximum(tl.sqrt(tl.sum(tl.where(ok, p * p, 0.0), axis=0)), 1e-12)
        tl.store(p_row + offs, p, mask=ok)
        tl.store(m_row + offs, m, mask=ok)
        tl.store(v_row + offs, v, mask=ok)
    else:
        parallel = 0.0
        if PROJECT:
            gp = tl.zeros([BLOCK_D], dtype=tl.float32)
            pp = tl.zeros([BLOCK_D], dtype=tl.float32)
            for start in range(0, d, BLOCK_D):
                ok = start + offs < d
                p = tl.load(p_row + start + offs, mask=ok, other=0).to(tl.float32)
                g = tl.load(g_row + start + offs, mask=ok, other=0).to(tl.float32)
                gp += g * p
                pp += p * p
            parallel = tl.sum(gp, axis=0) / tl.maximum(tl.sum(pp, axis=0), 1e-12)
        norm_sq = tl.zeros([BLOCK_D], dtype=tl.float32)
        for start in range(0, d, BLOCK_D):
            ok = start + offs < d
            p = tl.load(p_row + start + offs, mask=ok, other=0).to(tl.float32)
            g = tl.load(g_row + start + offs, mask=ok, other=0).to(tl.float32)
            m = tl.load(m_row + start + offs, mask=ok, other=0).to(tl.float32)
            v = tl.load(v_row + start + offs, mask=ok, other=0).to(tl.float32)
            if PROJECT:
                g = g - parallel * p
            p, m, v = _moments_and_step(
                p, g, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt, DECAY
            )
            norm_sq += tl.where(ok, p * p, 0.0)
            tl.store(p_row + start + offs, p, mask=ok)
            tl.store(m_row + start + offs, m, mask=ok)
            tl.store(v_row + start + offs, v, mask=ok)
        if RENORM:
            scale = 1.0 / tl.maximum(tl.sqrt(tl.sum(norm_sq, axis=0)), 1e-12)
            for start in range(0, d, BLOCK_D):
                ok = start + offs < d
                p = tl.load(p_row + start + offs, mask=ok, other=0).to(tl.float32)
                tl.store(p_row + start + offs, p * scale, mask=ok)


def _decay_mode(weight_decay: float, decoupled: bool) -> int:
    if weight_decay == 0.0:
        return 0
    return 2 if decoupled else 1


def adam_flat(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    s: AdamScalars,
    decoupled: bool,
    config: AdamConfig | None = None,
) -> None:
    """In-place update of flat (1-D, contiguous) views p, m, v with gradient g."""
    config = config or DEFAULT_CONFIG
    numel = p.numel()
    if numel == 0:
        return
    block = min(config.flat_block, triton.next_power_of_2(numel))
    _adam_flat_kernel[(triton.cdiv(numel, block),)](
        p,
        g,
        m,
        v,
        numel,
        s.lr,
        s.beta1,
        s.beta2,
        s.eps,
        s.weight_decay,
        s.step_size,
        s.bias_correction2_sqrt,
        DECAY=_decay_mode(s.weight_decay, decoupled),
        BLOCK=block,
        num_warps=config.flat_warps,
    )


def adam_rows(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    s: AdamScalars,
    decoupled: bool,
    project: bool,
    renorm: bool,
    config: AdamConfig | None = None,
) -> None:
    """In-place row-wise update of a 2-D p [n, d] (rows contiguous), with projection and renorm."""
    config = config or DEFAULT_CONFIG
    n, d = p.shape
    if n == 0 or d == 0:
        return
    for t in (p, g, m, v):
        if t.stride(1) != 1:
            raise ValueError("adam_rows needs contiguous rows")
    block_d = min(config.row_block_d, triton.next_power_of_2(d))
    _adam_rows_kernel[(n,)](
        p,
        g,
        m,
        v,
        d,
        p.stride(0),
        g.stride(0),
        m.stride(0),
        v.stride(0),
        s.lr,
        s.beta1,
        s.beta2,
        s.eps,
        s.weight_decay,
        s.step_size,
        s.bias_correction2_sqrt,
        DECAY=_decay_mode(s.weight_decay, decoupled),
        PROJECT=project,
        RENORM=renorm,
        BLOCK_D=block_d,
        ONE_TILE=block_d >= d,
        num_warps=max(4, min(16, block_d // 256)),
    )
