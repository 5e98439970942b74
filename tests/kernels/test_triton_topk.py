"""Radix-select top-k (Triton) against torch.topk and a stable sort: values, ties, masks, layouts."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from saescope.errors import ConfigError
from saescope.kernels.triton_topk import (
    TopKConfig,
    candidate_capacity,
    select_rows,
    tie_offset,
    topk_indices,
)

from .triton_env import DEVICE, INTERPRETED, poisoned

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
SMALL = TopKConfig(block_n=64, sample=64)  # several chunks per row, a sample of 2 runs of 32 entries
# Few candidate slots and no oversampling: rows the sample misjudges leave the candidate path.
FRAGILE = TopKConfig(block_n=64, sample=64, oversample=1, candidates=16)


def first_k_of_stable_sort(x: torch.Tensor, k: int) -> torch.Tensor:
    """The kernel's documented choice: all ids above the k-th value, then the tied ids from the
    row's tie offset on, wrapping around (a stable sort of the row rotated to start there)."""
    n = x.shape[-1]
    rows = x.reshape(-1, n).float().cpu()
    chosen = []
    for r, row in enumerate(rows):
        off = tie_offset(r, n)
        order = torch.sort(row.roll(-off), descending=True, stable=True).indices[:k]
        chosen.append((order + off) % n)
    return torch.stack(chosen).reshape(*x.shape[:-1], k).to(x.device)


def check_selection(x: torch.Tensor, k: int, ids: torch.Tensor) -> None:
    assert ids.dtype == torch.int64 and ids.shape == (*x.shape[:-1], k)
    flat = ids.reshape(-1, k).cpu()
    assert ((flat >= 0) & (flat < x.shape[-1])).all(), "unwritten or out-of-range ids"
    assert all(len(set(row.tolist())) == k for row in flat), "an id selected twice"
    chosen = torch.sort(first_k_of_stable_sort(x, k), dim=-1).values
    torch.testing.assert_close(torch.sort(ids, dim=-1).values, chosen, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("rows", "n", "k", "config"),
    [
        (5, 37, 5, SMALL),
        (3, 300, 17, SMALL),
        (4, 97, 1, SMALL),
        (2, 64, 64, SMALL),
        (6, 1000, 256, TopKConfig()),
    ],
)
def test_matches_torch_topk(dtype: torch.dtype, rows: int, n: int, k: int, config: TopKConfig) -> None:
    x = torch.randn(rows, n, device=DEVICE).to(dtype)
    out = poisoned((rows, k), torch.int64)
    ids = topk_indices(x, k, config=config, out=out)
    assert ids.data_ptr() == out.data_ptr()
    check_selection(x, k, ids)
    torch.testing.assert_close(
        x.gather(-1, ids).float().sort(-1).values, x.float().topk(k).values.sort(-1).values, rtol=0, atol=0
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_are_broken_from_each_rows_offset(dtype: torch.dtype) -> None:
    x = torch.randint(-3, 4, (3, 150), device=DEVICE).to(dtype)
    x[0] = 1.0  # one row entirely tied
    for k in (1, 61):
        check_selection(x, k, topk_indices(x, k, config=TopKConfig(block_n=128)))
        check_selection(x, k, topk_indices(x, k, config=FRAGILE))  # the exact path


def test_ties_favour_no_column() -> None:
    """All rows entirely tied: every column is picked equally often, on both paths (lowest-id
    tie-breaking would pick column 0 every time and bias training towards low latent ids)."""
    x = torch.ones(256, 64, device=DEVICE, dtype=torch.bfloat16)
    for config in (SMALL, FRAGILE):
        picks = topk_indices(x, 1, config=config).flatten().cpu()
        assert torch.bincount(picks, minlength=64).tolist() == [4] * 64


def test_infinities_and_signs() -> None:
    x = torch.randn(3, 100, device=DEVICE)
    x[0, 7] = float("inf")
    x[0, 99] = float("-inf")
    x[1, :] = -torch.rand(100, device=DEVICE) - 1.0  # all negative
    x[2, 5::10] = float("-inf")
    for dtype in (torch.float32, torch.bfloat16):
        xs = x.to(dtype)
        for k in (1, 100):
            check_selection(xs, k, topk_indices(xs, k))


def test_strided_rows_and_leading_dims() -> None:
    wide = torch.randn(2, 3, 130, device=DEVICE)
    x = wide[..., :101]  # rows not contiguous with each other
    ids = topk_indices(x, 9, config=SMALL)
    assert ids.shape == (2, 3, 9)
    check_selection(x, 9, ids)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16))
def test_masked_matches_masked_fill_reference(dtype: torch.dtype) -> None:
    n = 233
    x = torch.randn(3, n, device=DEVICE).to(dtype)
    mask = torch.rand(n, device=DEVICE) < 0.3
    k = 12
    ids = topk_indices(x, k, mask=mask, config=SMALL)
    assert mask[ids].all()
    reference = x.float().masked_fill(~mask, float("-inf")).topk(k).values
    torch.testing.assert_close(
        x.gather(-1, ids).float().sort(-1).values, reference.sort(-1).values, rtol=0, atol=0
    )


def test_masked_with_fewer_allowed_than_k_fills_with_disallowed_ids_from_the_tie_offset() -> None:
    n = 90
    x = torch.randn(3, n, device=DEVICE)
    mask = torch.zeros(n, dtype=torch.bool, device=DEVICE)
    mask[[4, 50, 77]] = True
    ids = topk_indices(x, 6, mask=mask, config=SMALL)
    for r, row in enumerate(ids.cpu()):
        walk = [(tie_offset(r, n) + j) % n for j in range(n)]
        fill = [c for c in walk if c not in (4, 50, 77)][:3]
        assert sorted(row.tolist()) == sorted([4, 50, 77, *fill])


def test_bad_arguments_are_config_errors() -> None:
    x = torch.randn(2, 10, device=DEVICE)
    with pytest.raises(ConfigError, match="k="):
        topk_indices(x, 11)
    with pytest.raises(ConfigError, match="k="):
        topk_indices(x, 0)
    with pytest.raises(ConfigError, match="bf16, fp16 and fp32"):
        topk_indices(x.double(), 3)
    with pytest.raises(ConfigError, match="mask"):
        topk_indices(x, 3, mask=torch.ones(9, dtype=torch.bool, device=DEVICE))


@pytest.mark.skipif(INTERPRETED, reason="full-size rows only on a GPU")
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16))
@pytest.mark.parametrize(("n", "k"), [(65536, 64), (131072, 256), (49999, 32)])
def test_full_size_rows_on_gpu(dtype: torch.dtype, n: int, k: int) -> None:
    x = torch.randn(64, n, device=DEVICE).to(dtype)
    ids = topk_indices(x, k)
    check_selection(x, k, ids)


def paths_taken(
    x: torch.Tensor, k: int, config: TopKConfig, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """True for the rows that took the exact radix path; checks the selection too."""
    out = poisoned((x.shape[0], k), torch.int64)
    counts = select_rows(x, k, mask, config, out)
    if mask is None:
        check_selection(x, k, out)
    return (counts < k) | (counts > candidate_capacity(k, config))


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16))
def test_typical_rows_take_the_candidate_path(dtype: torch.dtype) -> None:
    x = torch.randn(4, 500, device=DEVICE).to(dtype)
    assert not paths_taken(x, 9, SMALL).any()
    mask = torch.rand(500, device=DEVICE) < 0.2
    ids = topk_indices(x, 9, mask=mask, config=SMALL)
    assert mask[ids].all()
    assert not paths_taken(x, 9, SMALL, mask).any()


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16))
def test_rows_the_sample_misjudges_take_the_exact_path(dtype: torch.dtype) -> None:
    n = 300  # the sample of row r: columns 0-31 and 150-181, shifted by the row's offset

    def shift_sample(x: torch.Tensor, by: float) -> torch.Tensor:
        for r in range(x.shape[0]):
            cols = (torch.cat([torch.arange(0, 32), torch.arange(150, 182)]) + tie_offset(r, n)) % n
            x[r, cols.to(DEVICE)] += by
        return x

    x = torch.randn(4, n, device=DEVICE)
    high = shift_sample(x.clone(), 20)  # threshold guess too high: fewer candidates than k
    # ties, on the exact path; threshold guess too low: more candidates than slots
    low = shift_sample(torch.randint(-3, 4, (4, n), device=DEVICE).float(), -20)
    assert paths_taken(high.to(dtype), 70, FRAGILE).all()
    assert paths_taken(low.to(dtype), 3, FRAGILE).all()
    mixed = torch.stack([x[0], high[1], x[2], high[3]]).to(dtype)  # both paths in one launch
    assert paths_taken(mixed, 70, SMALL).tolist() == [False, True, False, True]
