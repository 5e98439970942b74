"""Sparse row sums in Triton: the decoder forward and the gradients of a sparse-coded layer.

Two kernels cover every sparse product of an SAE step:

- `gather_rows(coef [N, K], ids [N, K], W [n, d])` -> out [N, d] with
  out[b] = sum_j coef[b, j] · W[ids[b, j]] (row-major: one program per (row, column tile), fp32
  accumulation, no [N, K, d] temporary). Decoder forward (W = W_dec) and the input gradient of the
  encoder (W = W_encᵀ, whose rows are contiguous).
- `latent_rows(plan, coef, Y)` -> rows [n, d] with rows[l] = sum over the entries (b, j) where
  ids[b, j] = l of coef[b, j] · Y[b] (latent-major: one program per (latent, column tile), each
  output row written once: no atomics, no index_add_, deterministic). Encoder weight gradient
  (Y = x − b_dec, coef = d selected) and decoder weight gradient (Y = d recon, coef = latent acts).
  Optionally also the row sums of coef (the encoder bias gradient) and the sampled dot products
  dots[b, j] = Y[b] · W[ids[b, j]] (the latent-activation gradient of the decoder), which reuse the
  Y rows the program has just loaded, so W is read once, row by row, instead of gathered per entry.

The latent-major order is a `LatentPlan`: the N·K entries sorted by latent id once per step
(`torch.sort` + `searchsorted`, no host sync), cached for the indices tensor it was made from, so
the decoder and encoder backward of one step share it. A latent with more than `segment` entries
(a dense latent fires on most rows: up to N entries, where the average is N·K/n) is split into
segments of `segment` entries that run in parallel programs and write fp32 partial rows; a second
kernel sums each such latent's partials in a fixed order. So one dense latent does not leave the
whole step waiting on a single program, and the result stays deterministic. This module knows
nothing about autograd or SAEs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor


class SparseConfig(NamedTuple):
    """Tile sizes of the two kernels: the fastest of a sweep on an H100 at d_in 2048, 65,536 latents,
    K = 64, N = 8192 (`benchmarks/train_step_gpu.py`)."""

    gather_block_k: int = 64
    gather_block_d: int = 32
    gather_warps: int = 1
    latent_block_e: int = 2
    """Entries (rows of Y) loaded per step; a latent has N·K/n entries on average (8 at the anchor):
    small steps keep more programs resident, which matters more than wide loads here."""
    latent_tile_bytes: int = 1024
    """Bytes of each Y row per program (256 fp32 or 512 bf16 columns): same bytes in flight per dtype."""
    latent_warps: int = 2


DEFAULT_CONFIG = SparseConfig()


class LatentPlan(NamedTuple):
    """The N·K (row, slot) entries of an [N, K] id matrix grouped by latent."""

    order: Tensor
    """[N·K] int32 flat positions b·K + j, sorted by latent id (then by position)."""
    offsets: Tensor
    """[n + 1] int32: the entries of latent l are order[offsets[l]:offsets[l + 1]]."""
    schedule: Tensor
    """[n] int32 latent ids, most entries first (long lists start early; the tail stays short)."""
    k: int
    """K, the slots per row (to turn a flat position back into a row)."""
    segment: int
    """Latents with more entries than this are summed in segments of this many entries."""
    seg_latent: Tensor
    """[S] int32: the latent owning segment s (n for the unused tail of this upper bound S)."""
    seg_end: Tensor
    """[n] int32: one past the last segment of each latent (inclusive cumsum of segment counts)."""


SEGMENT = 256
"""Default segment length: 128 steps of 2 entries, as long as the longest unsplit latents."""


class LatentRows(NamedTuple):
    """Result of `latent_rows`."""

    rows: Tensor
    """[n, d] per-latent sums of coef · Y (latent-major)."""
    coef_sums: Tensor | None
    """[n] float32 per-latent sums of coef (when asked for), else None."""
    dots: Tensor | None
    """[N, K] float32 Y[b] · W[ids[b, j]] (when W was given), else None."""


_plan_cache: tuple[Tensor, int, int, LatentPlan] | None = None


def latent_plan(ids: Tensor, n: int, segment: int = SEGMENT) -> LatentPlan:
    """Group the entries of ids [N, K] by latent; reuses the last plan made for the same tensor."""
    global _plan_cache
    if segment < 1:
        raise ValueError(f"segment must be positive, got {segment}")
    if _plan_cache is not None:
        cached, version, cached_n, plan = _plan_cache
        if (
            cached_n == n
            and plan.segment == segment
            and cached.device == ids.device
            and cached.data_ptr() == ids.data_ptr()
            and cached.shape == ids.shape
            and cached.stride() == ids.stride()
            and cached._version == version == ids._version
        ):
            return plan
    keys, order = torch.sort(ids.reshape(-1).to(torch.int32), stable=True)
    # searchsorted, not bincount: bincount on CUDA reads the max id back to the host (a sync).
    bounds = torch.arange(n + 1, dtype=torch.int32, device=ids.device)
    offsets = torch.searchsorted(keys, bounds, out_int32=True)
    counts = offsets[1:] - offsets[:-1]
    schedule = torch.sort(counts, descending=True, stable=True).indices.to(torch.int32)
    order = order.to(torch.int32)
    # Segments of the long latents. A long latent (count > segment) has ceil(count / segment) <
    # 2·count / segment of them, so 2·N·K / segment + 1 bounds their number without a host sync.
    n_seg = torch.where(counts > segment, (counts + segment - 1) // segment, 0)
    seg_end = torch.cumsum(n_seg, 0, dtype=torch.int32)
    bound = 2 * ids.numel() // segment + 1
    seg_ids = torch.arange(bound, dtype=torch.int32, device=ids.device)
    seg_latent = torch.searchsorted(seg_end, seg_ids, right=True, out_int32=True)
    plan = LatentPlan(order, offsets, schedule, ids.shape[-1], segment, seg_latent, seg_end)
    _plan_cache = (ids, ids._version, n, plan)
    return plan


def clear_plan_cache() -> None:
    """Drop the cached plan (and the reference it holds to the last indices tensor)."""
    global _plan_cache
    _plan_cache = None


@triton.jit
def _gather_rows_kernel(
    coef_ptr,
    ids_ptr,
    w_ptr,
    out_ptr,
    K,
    d,
    stride_w,
    stride_out,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < d
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for j0 in range(0, K, BLOCK_K):
        slots = j0 + tl.arange(0, BLOCK_K)
        slot_ok = slots < K
        ids = tl.load(ids_ptr + row * K + slots, mask=slot_ok, other=0).to(tl.int64)
        c = tl.load(coef_ptr + row * K + slots, mask=slot_ok, other=0).to(tl.float32)
        w = tl.load(
            w_ptr + ids[:, None] * stride_w + cols[None, :], mask=slot_ok[:, None] & col_ok[None, :], other=0
        ).to(tl.float32)
        acc += tl.sum(c[:, None] * w, axis=0)
    tl.store(out_ptr + row * stride_out + cols, acc, mask=col_ok)


@triton.jit
def _latent_rows_kernel(
    y_ptr,
    stride_y,
    coef_ptr,
    order_ptr,
    offsets_ptr,
    schedule_ptr,
    seg_latent_ptr,
    seg_end_ptr,
    out_ptr,
    stride_out,
    part_ptr,
    part_coef_ptr,
    coef_sum_ptr,
    w_ptr,
    stride_w,
    dots_ptr,
    K,
    d,
    n,
    NK,
    S,
    SEG,
    HAS_SUMS: tl.constexpr,
    HAS_DOTS: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # Programs [0, S) are segments of long latents (scheduled first: they are the long ones), the
    # rest one latent each, most entries first; a long latent's own program does nothing.
    p = tl.program_id(0)
    tile = tl.program_id(1)
    seg_mode = p < S
    sp = tl.minimum(p, S - 1)
    latent = tl.where(seg_mode, tl.load(seg_latent_ptr + sp), tl.load(schedule_ptr + tl.maximum(p - S, 0)))
    real = latent < n  # the tail of the segment bound has latent n
    latent = tl.where(real, latent, 0).to(tl.int64)
    lo = tl.load(offsets_ptr + latent)
    hi = tl.load(offsets_ptr + latent + 1)
    long = hi - lo > SEG
    first_seg = tl.load(seg_end_ptr + latent) - (hi - lo + SEG - 1) // SEG
    seg_start = lo + (sp - first_seg) * SEG
    start = tl.where(seg_mode, seg_start, lo)
    end = tl.where(seg_mode, tl.minimum(seg_start + SEG, hi), hi)
    active = real & (seg_mode == long)
    end = tl.where(active, end, start)
    cols = tile * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < d
    if HAS_DOTS:
        w = tl.load(w_ptr + latent * stride_w + cols, mask=cols < tl.where(active, d, 0), other=0)
        w = w.to(tl.float32)
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    coef_total = tl.zeros([BLOCK_E], dtype=tl.float32)
    for e0 in range(start, end, BLOCK_E):
        entries = e0 + tl.arange(0, BLOCK_E)
        entry_ok = entries < end
        pos = tl.load(order_ptr + entries, mask=entry_ok, other=0)
        rows = (pos // K).to(tl.int64)
        c = tl.load(coef_ptr + pos, mask=entry_ok, other=0).to(tl.float32)
        y = tl.load(
            y_ptr + rows[:, None] * stride_y + cols[None, :],
            mask=entry_ok[:, None] & col_ok[None, :],
            other=0,
        ).to(tl.float32)
        acc += tl.sum(c[:, None] * y, axis=0)
        if HAS_DOTS:
            tl.store(dots_ptr + tile.to(tl.int64) * NK + pos, tl.sum(y * w[None, :], axis=1), mask=entry_ok)
        if HAS_SUMS:
            coef_total += c
    whole = active & (seg_mode == 0)
    part = active & seg_mode
    # (vector masks as `cols < where(flag, d, 0)`: the interpreter cannot AND a vector and a scalar)
    tl.store(out_ptr + latent * stride_out + cols, acc, mask=cols < tl.where(whole, d, 0))
    tl.store(part_ptr + sp.to(tl.int64) * d + cols, acc, mask=cols < tl.where(part, d, 0))
    if HAS_SUMS:
        total = tl.sum(coef_total, axis=0)
        tl.store(coef_sum_ptr + latent, total, mask=(tile == 0) & whole)
        tl.store(part_coef_ptr + sp, total, mask=(tile == 0) & part)


@triton.jit
def _segment_sums_kernel(
    part_ptr,
    part_coef_ptr,
    seg_latent_ptr,
    seg_end_ptr,
    offsets_ptr,
    out_ptr,
    stride_out,
    coef_sum_ptr,
    d,
    n,
    SEG,
    HAS_SUMS: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # The first segment's program of each long latent sums that latent's partials in order.
    s = tl.program_id(0)
    tile = tl.program_id(1)
    latent = tl.load(seg_latent_ptr + s)
    real = latent < n
    latent = tl.where(real, latent, 0).to(tl.int64)
    count = tl.load(offsets_ptr + latent + 1) - tl.load(offsets_ptr + latent)
    n_seg = (count + SEG - 1) // SEG
    is_first = real & (s == tl.load(seg_end_ptr + latent) - n_seg)
    n_seg = tl.where(is_first, n_seg, 0)
    cols = tile * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < d
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    coef_total = tl.zeros([1], dtype=tl.float32)
    for j in range(0, n_seg):
        acc += tl.load(part_ptr + (s + j).to(tl.int64) * d + cols, mask=col_ok, other=0)
        if HAS_SUMS:
            coef_total += tl.load(part_coef_ptr + s + j + tl.arange(0, 1))
    tl.store(out_ptr + latent * stride_out + cols, acc, mask=cols < tl.where(is_first, d, 0))
    if HAS_SUMS:
        first_tile = (tile == 0) & is_first
        tl.store(coef_sum_ptr + latent + tl.arange(0, 1), coef_total, mask=tl.arange(0, 1) < first_tile)


def gather_rows(
    coef: Tensor,
    ids: Tensor,
    W: Tensor,
    out_dtype: torch.dtype,
    config: SparseConfig | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """out[b] = sum_j coef[b, j] · W[ids[b, j]] -> [N, d] in out_dtype (fp32 accumulation).

    coef and ids are [N, K]; W is [n, d] (copied if its rows are not contiguous). `out`: an
    optional [N, d] buffer with contiguous rows to write into (tests poison it).
    """
    config = config or DEFAULT_CONFIG
    n_rows, k = ids.shape
    d = W.shape[1]
    if W.stride(1) != 1:
        W = W.contiguous()
    coef, ids = coef.contiguous(), ids.contiguous()
    if out is None:
        out = torch.empty(n_rows, d, dtype=out_dtype, device=W.device)
    if n_rows == 0:
        return out
    block_d = min(config.gather_block_d, triton.next_power_of_2(d))
    block_k = min(config.gather_block_k, triton.next_power_of_2(k))
    _gather_rows_kernel[(n_rows, triton.cdiv(d, block_d))](
        coef,
        ids,
        W,
        out,
        k,
        d,
        W.stride(0),
        out.stride(0),
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        num_warps=config.gather_warps,
    )
    return out


def latent_rows(
    plan: LatentPlan,
    coef: Tensor,
    Y: Tensor,
    out_dtype: torch.dtype,
    with_sums: bool = False,
    W: Tensor | None = None,
    config: SparseConfig | None = None,
    out: Tensor | None = None,
) -> LatentRows:
    """Per-latent sums of coef · Y over the plan's entries (see the module docstring).

    coef [N, K] (any float dtype; read as fp32), Y [N, d]. With `W` [n, d], also the sampled dots
    Y[b] · W[ids[b, j]]. `out`: an optional [n, d] buffer with contiguous rows (tests poison it).
    """
    config = config or DEFAULT_CONFIG
    n = plan.offsets.shape[0] - 1
    d = Y.shape[1]
    nk = plan.order.shape[0]
    if Y.stride(1) != 1:
        Y = Y.contiguous()
    coef = coef.contiguous()
    block_d = min(config.latent_tile_bytes // Y.element_size(), triton.next_power_of_2(d))
    n_tiles = triton.cdiv(d, block_d)
    if out is None:
        out = torch.empty(n, d, dtype=out_dtype, device=Y.device)
    sums = torch.empty(n, dtype=torch.float32, device=Y.device) if with_sums else None
    dots = torch.empty(n_tiles, nk, dtype=torch.float32, device=Y.device) if W is not None else None
    if W is not None and W.stride(1) != 1:
        W = W.contiguous()
    n_seg_bound = plan.seg_latent.shape[0]
    part = torch.empty(n_seg_bound, d, dtype=torch.float32, device=Y.device)
    part_coef = torch.empty(n_seg_bound, dtype=torch.float32, device=Y.device) if with_sums else part
    dummy = out  # never read: the constexpr flags switch those pointers off
    _latent_rows_kernel[(n_seg_bound + n, n_tiles)](
        Y,
        Y.stride(0),
        coef,
        plan.order,
        plan.offsets,
        plan.schedule,
        plan.seg_latent,
        plan.seg_end,
        out,
        out.stride(0),
        part,
        part_coef,
        sums if sums is not None else dummy,
        W if W is not None else dummy,
        W.stride(0) if W is not None else 0,
        dots if dots is not None else dummy,
        plan.k,
        d,
        n,
        nk,
        n_seg_bound,
        plan.segment,
        HAS_SUMS=with_sums,
        HAS_DOTS=W is not None,
        BLOCK_E=config.latent_block_e,
        BLOCK_D=block_d,
        num_warps=config.latent_warps,
    )
    _segment_sums_kernel[(n_seg_bound, n_tiles)](
        part,
        part_coef,
        plan.seg_latent,
        plan.seg_end,
        plan.offsets,
        out,
        out.stride(0),
        sums if sums is not None else dummy,
        d,
        n,
        plan.segment,
        HAS_SUMS=with_sums,
        BLOCK_D=block_d,
        num_warps=config.latent_warps,
    )
    dots_nk = None
    if dots is not None:
        dots_nk = (dots[0] if n_tiles == 1 else dots.sum(0)).view(nk // plan.k, plan.k)
    return LatentRows(out, sums, dots_nk)
