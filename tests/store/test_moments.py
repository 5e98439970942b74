"""RunningStats against numpy, merging, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from saescope.errors import StoreError
from saescope.store import moments as stats_module
from saescope.store.moments import RunningStats, batch_moments


def _data(n: int = 1000, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # a large offset: a naive sum-of-squares variance loses digits here, Welford/Chan does not
    return rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d) + 1e4


def _check(stats: RunningStats, x: np.ndarray, rtol: float = 1e-10) -> None:
    norms = np.linalg.norm(x, axis=1)
    assert stats.count == len(x)
    np.testing.assert_allclose(stats.mean.numpy(), x.mean(0), rtol=rtol)
    np.testing.assert_allclose(stats.var.numpy(), x.var(0), rtol=1e-8)
    assert stats.mean_squared_norm == pytest.approx(float(np.mean(np.sum(x * x, axis=1))), rel=rtol)
    assert stats.norm_mean == pytest.approx(float(norms.mean()), rel=rtol)
    assert stats.norm_std == pytest.approx(float(norms.std()), rel=1e-6)


def test_update_matches_numpy() -> None:
    x = _data()
    _check(RunningStats(x.shape[1]).update(torch.from_numpy(x)), x)


def test_many_small_updates_and_chunking_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _data(n=997)
    monkeypatch.setattr(stats_module, "CHUNK_ELEMENTS", 12 * 7)  # 7 rows per chunk
    one = RunningStats(x.shape[1]).update(x)
    _check(one, x)
    many = RunningStats(x.shape[1])
    for start in range(0, len(x), 31):
        many.update(x[start : start + 31])
    _check(many, x)


def test_merge_equals_one_pass() -> None:
    x = _data(n=900, seed=1)
    parts = [x[:1], x[1:400], x[400:401], x[401:]]
    merged = RunningStats(x.shape[1])
    for p in parts:
        merged.merge(RunningStats(x.shape[1]).update(p))
    _check(merged, x)
    # merging into an empty one and merging an empty one change nothing
    copy = RunningStats(x.shape[1]).merge(merged).merge(RunningStats(x.shape[1]))
    np.testing.assert_array_equal(copy.mean.numpy(), merged.mean.numpy())
    assert copy.count == merged.count


def test_empty_statistics_are_zero_not_nan() -> None:
    s = RunningStats(4)
    assert s.count == 0 and s.mean_squared_norm == 0.0 and s.norm_std == 0.0
    assert torch.equal(s.var, torch.zeros(4, dtype=torch.float64))


def test_batch_moments_use_the_stored_values() -> None:
    x = torch.randn(50, 6).to(torch.bfloat16)
    packed = batch_moments(x)
    assert packed.dtype == torch.float64 and packed.shape == (3 + 12,)
    ref = x.double().numpy()
    _check(RunningStats(6).merge_moments(packed), ref)


def test_dict_round_trip_is_exact_through_json() -> None:
    x = _data(n=300, seed=2)
    s = RunningStats(x.shape[1]).update(x)
    back = RunningStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.count == s.count
    np.testing.assert_array_equal(back.mean.numpy(), s.mean.numpy())
    np.testing.assert_array_equal(back.var.numpy(), s.var.numpy())
    assert back.norm_mean == s.norm_mean and back.norm_std == s.norm_std
    assert set(s.summary()) == {"count", "mean_squared_norm", "norm_mean", "norm_std"}


def test_save_load_safetensors(tmp_path) -> None:
    x = _data(n=200, seed=3)
    s = RunningStats(x.shape[1]).update(x)
    written = s.save(tmp_path / "stats.safetensors")
    assert written.size == (tmp_path / "stats.safetensors").stat().st_size
    tensors = safetensors.torch.load_file(tmp_path / "stats.safetensors")
    assert set(tensors) == {"mean", "var"} and tensors["mean"].dtype == torch.float64
    np.testing.assert_array_equal(tensors["mean"].numpy(), s.mean.numpy())
    back = RunningStats.load(tmp_path / "stats.safetensors")
    _check(back, x)
    assert back.summary() == pytest.approx(s.summary(), rel=1e-12)


def test_mismatched_dimensions_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="d_model"):
        RunningStats(3).merge(RunningStats(4))
    with pytest.raises(ValueError):
        RunningStats(3).update(torch.zeros(2, 4))
    (tmp_path / "bad.safetensors").write_bytes(b"\x05")
    with pytest.raises(StoreError, match="not a safetensors file"):
        RunningStats.load(tmp_path / "bad.safetensors")
