"""Sparse row-sum kernels (Triton) against dense float64 products: gather, latent-major sums, plan cache."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from saescope.kernels import triton_sparse
from saescope.kernels.triton_sparse import SparseConfig, gather_rows, latent_plan, latent_rows

from .triton_env import DEVICE, INTERPRETED, poisoned

# Small tiles: several column tiles and entry blocks even at interpreter sizes.
SMALL = SparseConfig(gather_block_k=4, gather_block_d=16, latent_block_e=4, latent_tile_bytes=64)
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def random_ids(rows: int, k: int, n: int) -> torch.Tensor:
    """Distinct ids per row (as TopK gives), latent 0 in every row (a long latent list)."""
    ids = torch.stack([torch.randperm(n - 1)[: k - 1] + 1 for _ in range(rows)]) if k > 1 else None
    zero = torch.zeros(rows, 1, dtype=torch.int64)
    return (zero if ids is None else torch.cat([zero, ids], dim=1)).to(DEVICE)


def dense_codes(coef: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The [N, n] float64 matrix with coef at the ids (duplicates summed)."""
    dense = torch.zeros(ids.shape[0], n, dtype=torch.float64, device=ids.device)
    return dense.scatter_add_(1, ids, coef.double())


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    assert not actual.isnan().any(), "unwritten (poisoned) or NaN output"
    err = (actual.double() - expected).norm() / expected.norm().clamp_min(1e-30)
    assert err < rel, f"relative error {err:.2e} >= {rel:.0e}"


@pytest.mark.parametrize("w_dtype", (torch.float32, torch.bfloat16))
@pytest.mark.parametrize(("rows", "k", "n", "d"), [(6, 5, 23, 37), (4, 1, 9, 16), (3, 7, 40, 5)])
def test_gather_rows_is_the_dense_product(w_dtype: torch.dtype, rows: int, k: int, n: int, d: int) -> None:
    ids = random_ids(rows, k, n)
    coef = torch.randn(rows, k, device=DEVICE).to(w_dtype)
    W = torch.randn(n, d, device=DEVICE).to(w_dtype)
    out = gather_rows(coef, ids, W, torch.float32, SMALL, out=poisoned((rows, d), torch.float32))
    assert_close(out, dense_codes(coef, ids, n) @ W.double(), TOL[w_dtype])


def test_gather_rows_reads_strided_weights_and_sums_duplicate_ids() -> None:
    ids = torch.tensor([[2, 2, 0], [1, 3, 1]], device=DEVICE)
    coef = torch.randn(2, 3, device=DEVICE)
    W_t = torch.randn(11, 4, device=DEVICE)  # W = W_t.t(): rows of W are strided
    out = gather_rows(coef, ids, W_t.t(), torch.float32, SMALL)
    assert_close(out, dense_codes(coef, ids, 4) @ W_t.t().double(), 1e-6)


@pytest.mark.parametrize("y_dtype", (torch.float32, torch.bfloat16))
@pytest.mark.parametrize(("rows", "k", "n", "d"), [(9, 4, 31, 37), (5, 1, 7, 16), (12, 6, 20, 3)])
def test_latent_rows_sums_and_dots(y_dtype: torch.dtype, rows: int, k: int, n: int, d: int) -> None:
    ids = random_ids(rows, k, n)
    coef = torch.randn(rows, k, device=DEVICE)
    Y = torch.randn(rows, d, device=DEVICE).to(y_dtype)
    W = torch.randn(n, d, device=DEVICE)
    plan = latent_plan(ids, n)
    res = latent_rows(
        plan, coef, Y, torch.float32, with_sums=True, W=W, config=SMALL, out=poisoned((n, d), torch.float32)
    )
    codes = dense_codes(coef, ids, n)
    assert_close(res.rows, codes.t() @ Y.double(), TOL[y_dtype])
    assert res.coef_sums is not None and res.dots is not None
    assert_close(res.coef_sums, codes.sum(0), 1e-6)
    expected_dots = torch.einsum("bd,bkd->bk", Y.double(), W.double()[ids])
    assert_close(res.dots, expected_dots, TOL[y_dtype])


@pytest.mark.parametrize("segment", (1, 2, 3, 4, 64))
def test_long_latents_are_summed_in_segments(segment: int) -> None:
    """Latents 0-2 are in every row (dense latents, split into segments when rows > segment);
    rows, sums and dots equal the dense products whatever the split, and repeat bit for bit."""
    rows, k, n, d = 11, 5, 19, 21
    ids = torch.stack([torch.cat([torch.arange(3), torch.randperm(n - 3)[: k - 3] + 3]) for _ in range(rows)])
    ids = ids[:, torch.randperm(k)].to(DEVICE)
    coef = torch.randn(rows, k, device=DEVICE)
    Y = torch.randn(rows, d, device=DEVICE)
    W = torch.randn(n, d, device=DEVICE)
    plan = latent_plan(ids, n, segment=segment)

    def run() -> triton_sparse.LatentRows:
        return latent_rows(
            plan,
            coef,
            Y,
            torch.float32,
            with_sums=True,
            W=W,
            config=SMALL,
            out=poisoned((n, d), torch.float32),
        )

    res = run()
    codes = dense_codes(coef, ids, n)
    assert_close(res.rows, codes.t() @ Y.double(), 1e-5)
    assert res.coef_sums is not None and res.dots is not None
    assert_close(res.coef_sums, codes.sum(0), 1e-6)
    assert_close(res.dots, torch.einsum("bd,bkd->bk", Y.double(), W.double()[ids]), 1e-5)
    again = run()
    assert torch.equal(again.rows, res.rows) and torch.equal(again.coef_sums, res.coef_sums)


def test_plan_segments_cover_each_long_latent() -> None:
    ids = torch.tensor([[0, 2], [0, 1], [0, 2], [0, 3], [0, 2]], device=DEVICE)  # counts 5, 1, 3, 1
    plan = latent_plan(ids, 4, segment=2)
    assert plan.seg_end.tolist() == [3, 3, 5, 5]  # latent 0: 3 segments, latent 2: 2
    n_bound = 2 * ids.numel() // 2 + 1
    assert plan.seg_latent.tolist() == [0, 0, 0, 2, 2] + [4] * (n_bound - 5)
    with pytest.raises(ValueError, match="segment"):
        latent_plan(ids, 4, segment=0)


def test_latent_rows_writes_zero_rows_for_silent_latents() -> None:
    ids = torch.tensor([[1, 4], [4, 6]], device=DEVICE)
    res = latent_rows(
        latent_plan(ids, 9),
        torch.randn(2, 2, device=DEVICE),
        torch.randn(2, 5, device=DEVICE),
        torch.float32,
        config=SMALL,
        out=poisoned((9, 5), torch.float32),
    )
    assert res.coef_sums is None and res.dots is None
    silent = [0, 2, 3, 5, 7, 8]
    assert (res.rows[silent] == 0).all()
    assert (res.rows[[1, 4, 6]] != 0).all()


def test_latent_rows_writes_the_output_dtype() -> None:
    ids = random_ids(5, 3, 12)
    coef, Y = torch.randn(5, 3, device=DEVICE), torch.randn(5, 8, device=DEVICE)
    res = latent_rows(latent_plan(ids, 12), coef, Y, torch.bfloat16, config=SMALL)
    assert res.rows.dtype == torch.bfloat16
    assert_close(res.rows, dense_codes(coef, ids, 12).t() @ Y.double(), 1e-2)


def test_plan_groups_entries_by_latent_and_is_reused_until_the_ids_change() -> None:
    triton_sparse.clear_plan_cache()
    ids = torch.tensor([[3, 0, 5], [5, 3, 1]], device=DEVICE)
    plan = latent_plan(ids, 7)
    assert plan.offsets.tolist() == [0, 1, 2, 2, 4, 4, 6, 6]
    flat = ids.reshape(-1)
    assert flat[plan.order.long()].tolist() == [0, 1, 3, 3, 5, 5]
    assert plan.order.tolist()[2:4] == [0, 4] and plan.order.tolist()[4:6] == [
        2,
        3,
    ]  # row order within a latent
    counts = torch.bincount(flat, minlength=7)
    assert counts[plan.schedule.long()].tolist() == sorted(counts.tolist(), reverse=True)
    assert latent_plan(ids.view(2, 3), 7) is plan  # a view of the same ids: same plan
    assert latent_plan(ids, 8) is not plan
    ids2 = ids.clone()
    assert latent_plan(ids2, 7) is not latent_plan(ids, 7)
    ids[0, 0] = 6  # in-place change: the cached plan is stale
    assert latent_plan(ids, 7).offsets.tolist() == [0, 1, 2, 2, 3, 3, 5, 6]
    triton_sparse.clear_plan_cache()


@pytest.mark.skipif(INTERPRETED, reason="real sizes only on a GPU")
def test_real_sizes_on_gpu() -> None:
    rows, k, n, d = 512, 64, 65536, 2048
    ids = torch.rand(rows, n, device=DEVICE).topk(k).indices
    coef = torch.randn(rows, k, device=DEVICE)
    W = torch.randn(n, d, device=DEVICE)
    Y = torch.randn(rows, d, device=DEVICE)
    out = gather_rows(coef, ids, W, torch.float32)
    expected = torch.nn.functional.embedding_bag(ids, W, per_sample_weights=coef, mode="sum")
    assert_close(out, expected.double(), 1e-5)
    res = latent_rows(latent_plan(ids, n), coef, Y, torch.float32, with_sums=True, W=W)
    codes = torch.zeros(rows, n, device=DEVICE).scatter_(1, ids, coef)
    assert_close(res.rows, (codes.t().double() @ Y.double()), 1e-5)
    assert res.dots is not None
    assert_close(res.dots, torch.bmm(W[ids], Y.unsqueeze(-1)).squeeze(-1).double(), 1e-5)
