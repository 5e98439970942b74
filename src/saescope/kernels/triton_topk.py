"""Top-k selection of each row in Triton, without sorting: `topk_indices(pre_acts, k, mask=None)`.

Values become order-preserving int32 keys (IEEE sign-magnitude flipped to two's-complement order:
16-bit keys for bf16/fp16, 32-bit for fp32). Per row (three launches, one program per row each):

1. Guess a threshold from a sample: `sample` entries spread over the row (runs of 32 contiguous
   entries, so that latents sorted by anything stay fair; the runs start at the row's own offset,
   so no fixed set of columns, a few dense latents say, skews every row's guess); t0 = the m-th
   largest sample key, m
   chosen so that about `oversample`·k entries of the whole row are >= t0. Found by bisection on
   the key (a count per step, all in registers).
2. One pass over the row: the entries >= t0 (the candidates) are compacted in column order, with
   their keys, into a per-row buffer of `candidates` slots (only ~oversample·k of them written).
3. If there are between k and `candidates` of them (almost always), the exact k-th largest key T
   is found among the candidates by bisection, and exactly k ids are written: every candidate above
   T, then the candidates equal to T from the row's tie offset on (see below).
   Otherwise (adversarial rows: many ties, a sample that misrepresents the row, a mask that allows
   fewer than k entries) the row takes the exact radix path: one 256-bin histogram pass per key
   byte among the entries matching the bytes already fixed, then one compaction pass — same result.

So HBM sees each row about once and the work per entry is a compare and a prefix count; a
histogram per entry (what a pure radix select costs: ~100 warp instructions per 32 entries for 256
bins with Triton's ballot-based `tl.histogram`) is paid only on the rare fallback rows. The three
stages are separate kernels so that each keeps few registers (one fused kernel needed 255).
Ties at T go to the first columns at or after the row's offset `tie_offset(row, n)`, wrapping
around: deterministic, and fair to every column. (Breaking ties by lowest column instead biases
training towards low latent ids: bf16 pre-activations tie often — the top 2048 of a 65,536-wide
row took ~150 distinct values on an H100 run — so low ids won, fired more, and became the dense
latents that then misled every row's threshold guess, sending rows to the slow exact path.)
The output order within a row is unspecified.

`mask` (aux-k): a boolean [n] vector; only entries where it is True compete. The result equals
`pre_acts.masked_fill(~mask, -inf).topk(k)` up to ties (when fewer than k entries are allowed, the
rest are filled with disallowed ids, from the tie offset on). NaN keys sort above +inf (positive sign) or
below -inf (negative sign). This module knows nothing about SAEs, autograd or training.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..errors import ConfigError


class TopKConfig(NamedTuple):
    """Launch settings and selection parameters (see the module docstring). Defaults: the fastest of
    a sweep on an H100 at 8192 x 65536 bf16, k = 64 (`benchmarks/train_step_gpu.py`)."""

    block_n: int = 1024
    """Entries of a row handled per loop iteration (candidate pass and exact path)."""
    num_warps: int = 4
    """Warps of the candidate pass and of the exact path (the selection among candidates takes one
    warp per 256 candidate slots, 4 to 16)."""
    sample: int = 4096
    oversample: int = 4
    candidates: int = 1024
    """Candidate slots per row; raised to 4·oversample·k (next power of two) for large k."""


DEFAULT_CONFIG = TopKConfig()

TIE_HASH = 40503
"""Row r breaks ties from column (r · TIE_HASH) mod n on (an odd multiplier: the first 2^16 rows of
a 2^16-wide layer get distinct offsets, spread over the row). `_tie_start` repeats it in Triton."""


def tie_offset(row: int, n: int) -> int:
    """The column from which row `row` (of the [N, n] rows of one call) takes tied entries."""
    return row * TIE_HASH % n


@triton.jit
def _tie_start(row, n):
    return (row * 40503) % n  # TIE_HASH


@triton.jit
def _signed_keys(bits, KEY_BITS: tl.constexpr):
    """IEEE bit patterns (sign-extended int32) -> int32 keys whose signed order is the float order."""
    if KEY_BITS == 16:
        return tl.where(bits < 0, bits ^ 0x7FFF, bits)
    else:
        return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


@triton.jit
def _load_keys(row_ptr, mask_ptr, cols, valid, KEY_BITS: tl.constexpr, HAS_MASK: tl.constexpr):
    bits = tl.load(row_ptr + cols, mask=valid, other=0).to(tl.int32)
    keys = _signed_keys(bits, KEY_BITS)
    if HAS_MASK:
        allowed = tl.load(mask_ptr + cols, mask=valid, other=0)
        if KEY_BITS == 16:
            keys = tl.where(allowed != 0, keys, -32768)
        else:
            keys = tl.where(allowed != 0, keys, -2147483648)
    return keys


@triton.jit
def _unsigned_pattern(keys, KEY_BITS: tl.constexpr):
    """Signed keys -> the bit pattern of the same order read as unsigned (for byte extraction)."""
    if KEY_BITS == 16:
        return keys + 32768
    else:
        return keys ^ -2147483648


@triton.jit
def _kth_largest_key(keys, ok, m, KEY_BITS: tl.constexpr):
    """The m-th largest of the keys where `ok` (m >= 1; m <= the count), by bisection on the key."""
    lo = tl.full([], -(2 ** (KEY_BITS - 1)), tl.int64)
    hi = tl.full([], 2 ** (KEY_BITS - 1) - 1, tl.int64)
    for _ in tl.static_range(KEY_BITS):
        mid = lo + ((hi - lo + 1) >> 1)
        count = tl.sum((ok & (keys >= mid.to(tl.int32))).to(tl.int32), 0)
        ge = count >= m
        lo = tl.where(ge, mid, lo)
        hi = tl.where(ge, hi, mid - 1)
    return lo.to(tl.int32)


@triton.jit
def _radix_select_row(
    row_ptr,
    mask_ptr,
    out_row,
    n,
    k,
    tie_start,
    KEY_BITS: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """The exact fallback: radix select over the whole row, then a compaction pass."""
    offs = tl.arange(0, BLOCK_N)
    bins = tl.arange(0, 256)
    prefix = tl.zeros([], dtype=tl.int32)
    k_rem = tl.zeros([], dtype=tl.int32) + k
    # Radix passes, most significant byte first.
    for p in tl.static_range(KEY_BITS // 8):
        shift = KEY_BITS - 8 * (p + 1)
        hist = tl.zeros([256], dtype=tl.int32)
        for start in range(0, n, BLOCK_N):
            cols = start + offs
            valid = cols < n
            pattern = _unsigned_pattern(
                _load_keys(row_ptr, mask_ptr, cols, valid, KEY_BITS, HAS_MASK), KEY_BITS
            )
            digit = (pattern >> shift) & 255
            if p > 0:
                high = (pattern >> (shift + 8)) & ((1 << (8 * p)) - 1)
                valid = valid & (high == prefix)
            hist += tl.histogram(digit, 256, mask=valid)
        # The k_rem-th largest key among the matching ones has the largest byte b with
        # count(byte >= b) >= k_rem.
        at_most = tl.cumsum(hist, 0)
        at_least = tl.sum(hist, 0) - at_most + hist
        byte = tl.max(tl.where(at_least >= k_rem, bins, -1), 0)
        k_rem -= tl.sum(tl.where(bins > byte, hist, 0), 0)
        prefix = (prefix << 8) | byte
    # prefix is now the k-th largest key T (as an unsigned pattern); k_rem of the entries equal to T
    # are in the top k, after the k - k_rem entries above it.
    if KEY_BITS == 16:
        threshold = prefix - 32768
    else:
        threshold = prefix ^ -2147483648
    n_above = k - k_rem
    seen_above = tl.zeros([], dtype=tl.int32)
    seen_tied = tl.zeros([], dtype=tl.int32)
    # the compaction walks the row from the tie offset on, wrapping around
    for start in range(0, n, BLOCK_N):
        walk = start + offs
        valid = walk < n
        cols = ((walk + tie_start) % n).to(tl.int32)
        keys = _load_keys(row_ptr, mask_ptr, cols, valid, KEY_BITS, HAS_MASK)
        above = (valid & (keys > threshold)).to(tl.int32)
        tied = (valid & (keys == threshold)).to(tl.int32)
        rank_above = seen_above + tl.cumsum(above, 0) - 1
        rank_tied = seen_tied + tl.cumsum(tied, 0) - 1
        take = (above != 0) | ((tied != 0) & (rank_tied < k_rem))
        slot = tl.where(above != 0, rank_above, n_above + rank_tied)
        tl.store(out_row + slot, cols.to(tl.int64), mask=take)
        seen_above += tl.sum(above, 0)
        seen_tied += tl.sum(tied, 0)


@triton.jit
def _candidates_kernel(
    x_ptr,
    stride_x,
    mask_ptr,
    n_allowed_ptr,
    cand_keys_ptr,
    cand_ids_ptr,
    count_ptr,
    n,
    k,
    group_stride,
    KEY_BITS: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SAMPLE: tl.constexpr,
    GROUP: tl.constexpr,
    OVERSAMPLE: tl.constexpr,
    CAND: tl.constexpr,
    VEC: tl.constexpr,
    EVEN: tl.constexpr,
):
    """Stages 1-2 for one row: threshold guess from the sample, candidates compacted in column order."""
    row = tl.program_id(0).to(tl.int64)
    row_ptr = x_ptr + row * stride_x
    s_offs = tl.arange(0, SAMPLE)
    s_base = (s_offs // GROUP) * group_stride + s_offs % GROUP
    s_ok = s_base < n
    s_cols = ((s_base + _tie_start(row, n)) % n).to(tl.int32)
    s_keys = _load_keys(row_ptr, mask_ptr, s_cols, s_ok, KEY_BITS, HAS_MASK)
    if HAS_MASK:
        n_allowed = tl.load(n_allowed_ptr)
        s_ok = s_ok & (tl.load(mask_ptr + s_cols, mask=s_ok, other=0) != 0)
    else:
        n_allowed = n
    s_count = tl.sum(s_ok.to(tl.int32), 0)
    # m: the sample rank whose key about OVERSAMPLE·k entries of the row reach.
    m = (OVERSAMPLE * k * s_count + n_allowed - 1) // tl.maximum(n_allowed, 1)
    m = tl.minimum(tl.maximum(m, 1), s_count)
    t0 = _kth_largest_key(s_keys, s_ok, m, KEY_BITS)
    # The row in tiles [BLOCK_N // VEC, VEC]: each thread holds VEC contiguous entries (one 16-byte
    # load), so the prefix count is a scan inside each thread plus one scan of per-thread totals —
    # not a warp-shuffle scan per entry.
    count = tl.zeros([], dtype=tl.int32)
    tile = tl.arange(0, BLOCK_N // VEC)[:, None] * VEC + tl.arange(0, VEC)[None, :]
    cand_keys = cand_keys_ptr + row * CAND
    cand_ids = cand_ids_ptr + row * CAND
    for start in range(0, n, BLOCK_N):
        cols = start + tile
        if EVEN:  # no bounds checks when BLOCK_N divides n
            keys = _signed_keys(tl.load(row_ptr + cols).to(tl.int32), KEY_BITS)
            hit = keys >= t0
            if HAS_MASK:
                hit = hit & (tl.load(mask_ptr + cols) != 0)
        else:
            valid = cols < n
            keys = _load_keys(row_ptr, mask_ptr, cols, valid, KEY_BITS, HAS_MASK)
            if HAS_MASK:
                valid = valid & (tl.load(mask_ptr + cols, mask=valid, other=0) != 0)
            hit = valid & (keys >= t0)
        cand = hit.to(tl.int32)
        per_thread = tl.sum(cand, axis=1)
        before = tl.cumsum(per_thread, 0) - per_thread
        slot = count + before[:, None] + tl.cumsum(cand, axis=1) - 1
        keep = (cand != 0) & (slot < CAND)
        tl.store(cand_keys + slot, keys, mask=keep)
        tl.store(cand_ids + slot, cols, mask=keep)
        count += tl.sum(per_thread, 0)
    # A sample with no allowed entry gives no usable threshold: send the row to the exact path.
    tl.store(count_ptr + row, tl.where(s_count > 0, count, -1))


@triton.jit
def _select_candidates_kernel(
    cand_keys_ptr,
    cand_ids_ptr,
    count_ptr,
    out_ptr,
    stride_out,
    n,
    k,
    KEY_BITS: tl.constexpr,
    CAND: tl.constexpr,
):
    """Stage 3 for one row: the exact top k among its candidates (rows whose count is in range)."""
    row = tl.program_id(0).to(tl.int64)
    count = tl.load(count_ptr + row)
    if (count >= k) & (count <= CAND):
        offs = tl.arange(0, CAND)
        ok = offs < count
        keys = tl.load(cand_keys_ptr + row * CAND + offs, mask=ok, other=0)
        ids = tl.load(cand_ids_ptr + row * CAND + offs, mask=ok, other=0)
        threshold = _kth_largest_key(keys, ok, k, KEY_BITS)
        above = (ok & (keys > threshold)).to(tl.int32)
        tied = ok & (keys == threshold)
        n_above = tl.sum(above, 0)
        rank_above = tl.cumsum(above, 0) - 1
        # candidates are in column order: the tied ones from the row's offset on rank first
        start = _tie_start(row, n)
        late = (tied & (ids >= start)).to(tl.int32)
        early = (tied & (ids < start)).to(tl.int32)
        rank_tied = tl.where(late != 0, tl.cumsum(late, 0), tl.sum(late, 0) + tl.cumsum(early, 0)) - 1
        tied = tied.to(tl.int32)
        take = (above != 0) | ((tied != 0) & (rank_tied < k - n_above))
        slot = tl.where(above != 0, rank_above, n_above + rank_tied)
        tl.store(out_ptr + row * stride_out + slot, ids.to(tl.int64), mask=take)


@triton.jit
def _radix_rows_kernel(
    x_ptr,
    stride_x,
    mask_ptr,
    count_ptr,
    out_ptr,
    stride_out,
    n,
    k,
    KEY_BITS: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAND: tl.constexpr,
):
    """The exact path for the rows the candidate path could not take (count out of range)."""
    row = tl.program_id(0).to(tl.int64)
    count = tl.load(count_ptr + row)
    if (count < k) | (count > CAND):
        _radix_select_row(
            x_ptr + row * stride_x,
            mask_ptr,
            out_ptr + row * stride_out,
            n,
            k,
            _tie_start(row, n),
            KEY_BITS,
            HAS_MASK,
            BLOCK_N,
        )


_SAMPLE_RUN = 32  # contiguous entries per sample group (64-128 bytes: whole sectors)
_KEY_VIEW = {
    torch.bfloat16: (torch.int16, 16),
    torch.float16: (torch.int16, 16),
    torch.float32: (torch.int32, 32),
}


def topk_indices(
    pre_acts: Tensor,
    k: int,
    mask: Tensor | None = None,
    config: TopKConfig | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Ids [..., k] (int64) of the k largest entries of each row of `pre_acts` [..., n].

    With `mask` [n] (bool), only entries where it is True compete (see the module docstring).
    `out`: an optional contiguous int64 [rows, k] buffer to write into (tests poison it).
    """
    config = config or DEFAULT_CONFIG
    if pre_acts.dtype not in _KEY_VIEW:
        raise ConfigError(f"top-k selection supports bf16, fp16 and fp32 inputs, not {pre_acts.dtype}")
    n = pre_acts.shape[-1]
    if not 1 <= k <= n:
        raise ConfigError(f"top-k selection needs 1 <= k <= {n} (the row length), got k={k}")
    if mask is not None and (mask.shape != (n,) or mask.dtype != torch.bool):
        raise ConfigError(
            f"the top-k mask must be a bool vector of {n} entries, got {mask.dtype} {tuple(mask.shape)}"
        )
    lead = pre_acts.shape[:-1]
    rows = pre_acts.reshape(-1, n)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    if out is None:
        out = torch.empty(rows.shape[0], k, dtype=torch.int64, device=pre_acts.device)
    if rows.shape[0] > 0:
        select_rows(rows, k, mask, config, out)
    return out.reshape(*lead, k)


def select_rows(rows: Tensor, k: int, mask: Tensor | None, config: TopKConfig, out: Tensor) -> Tensor:
    """The three launches on validated 2-D `rows` [N, n]; returns the per-row candidate counts
    (a row took the exact radix path when its count is < k or > the candidate capacity; -1 when
    its sample had no allowed entry). Exposed for benchmarks and tests."""
    n = rows.shape[1]
    view_dtype, key_bits = _KEY_VIEW[rows.dtype]
    device = rows.device
    if mask is not None:
        mask_bytes = mask.contiguous().view(torch.uint8)
        n_allowed = mask.sum(dtype=torch.int32).reshape(1)
    else:
        mask_bytes = torch.empty(1, dtype=torch.uint8, device=device)
        n_allowed = torch.empty(1, dtype=torch.int32, device=device)
    block_n = min(config.block_n, triton.next_power_of_2(n))
    sample = min(config.sample, triton.next_power_of_2(n))
    group = min(_SAMPLE_RUN, sample)
    group_stride = max(group, n // (sample // group))
    cand = candidate_capacity(k, config)
    n_rows = rows.shape[0]
    cand_keys = torch.empty(n_rows, cand, dtype=torch.int32, device=device)
    cand_ids = torch.empty(n_rows, cand, dtype=torch.int32, device=device)
    counts = torch.empty(n_rows, dtype=torch.int32, device=device)
    keys = rows.view(view_dtype)
    _candidates_kernel[(n_rows,)](
        keys,
        rows.stride(0),
        mask_bytes,
        n_allowed,
        cand_keys,
        cand_ids,
        counts,
        n,
        k,
        group_stride,
        KEY_BITS=key_bits,
        HAS_MASK=mask is not None,
        BLOCK_N=block_n,
        SAMPLE=sample,
        GROUP=group,
        OVERSAMPLE=config.oversample,
        CAND=cand,
        VEC=min(16 // rows.element_size(), block_n),
        EVEN=n % block_n == 0,
        num_warps=config.num_warps,
    )
    _select_candidates_kernel[(n_rows,)](
        cand_keys,
        cand_ids,
        counts,
        out,
        out.stride(0),
        n,
        k,
        KEY_BITS=key_bits,
        CAND=cand,
        num_warps=max(4, min(16, cand // 256)),
    )
    _radix_rows_kernel[(n_rows,)](
        keys,
        rows.stride(0),
        mask_bytes,
        counts,
        out,
        out.stride(0),
        n,
        k,
        KEY_BITS=key_bits,
        HAS_MASK=mask is not None,
        BLOCK_N=block_n,
        CAND=cand,
        num_warps=config.num_warps,
    )
    return counts


def candidate_capacity(k: int, config: TopKConfig | None = None) -> int:
    """Candidate slots per row (rows with more candidates, or fewer than k, take the exact path)."""
    config = config or DEFAULT_CONFIG
    return max(config.candidates, triton.next_power_of_2(4 * config.oversample * k))
