"""Running statistics of activation rows: per-dimension mean and variance, and row norms.

Welford's update generalised to batches and merges (Chan, Golub & LeVeque 1979): each batch is
reduced to (count, mean, sum of squared deviations) in float64 and combined with the running
state, so statistics of several ranks, or of a capture resumed several times, merge exactly as
if the rows had been seen in one pass. llama3_interpretability_sae used Welford's mean to initialise `b_pre`;
training normalisation reads `mean_squared_norm` (E‖x‖², OpenAI's unit-mean-squared-norm scaling).
Variances are population variances (divided by the count).

This module knows nothing about files of the store, shards or ranks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import StoreError
from ..files import Written, write_atomic
from .shardfile import read_safetensors_header, safetensors_chunks, tensor_bytes

CHUNK_ELEMENTS = 1 << 23
"""Elements converted to float64 at once by `update` (64 MiB), so memory stays bounded."""


def batch_moments(x: Tensor) -> Tensor:
    """Moments of the rows of `x [n, d]` packed into one float64 tensor on x's device.

    Layout `[n, norm_mean, norm_m2, mean (d), m2 (d)]`: one tensor so a CUDA caller can copy it
    to the host with a single non-blocking transfer. `var_mean` is ATen's fused Welford
    reduction: one pass, no cancellation (2.4× faster than separate mean/deviation passes).
    """
    x64 = x.detach().to(torch.float64)
    n = x64.shape[0]
    var, mean = torch.var_mean(x64, 0, correction=0)
    norm_var, norm_mean = torch.var_mean(torch.linalg.vector_norm(x64, dim=1), correction=0)
    count = x64.new_full((1,), float(n))  # a fill, not a host-to-device copy
    return torch.cat([count, norm_mean.reshape(1), (norm_var * n).reshape(1), mean, var * n])


class RunningStats:
    """Mergeable float64 statistics of activation rows (count, mean, var, norms)."""

    def __init__(self, d_model: int) -> None:
        self.d_model = d_model
        self.count = 0
        self._mean = np.zeros(d_model, dtype=np.float64)
        self._m2 = np.zeros(d_model, dtype=np.float64)
        self._norm_mean = 0.0
        self._norm_m2 = 0.0

    def __repr__(self) -> str:
        return (
            f"RunningStats(d_model={self.d_model}, count={self.count}, "
            f"mean_squared_norm={self.mean_squared_norm:.6g}, norm_mean={self.norm_mean:.6g})"
        )

    def copy(self) -> RunningStats:
        """An independent copy."""
        out = RunningStats(self.d_model)
        out.count = self.count
        out._mean = self._mean.copy()
        out._m2 = self._m2.copy()
        out._norm_mean = self._norm_mean
        out._norm_m2 = self._norm_m2
        return out

    def update(self, x: Tensor | np.ndarray) -> RunningStats:
        """Add the rows of `x [n, d_model]` (any dtype; computed in float64). Returns self."""
        t = torch.as_tensor(x)
        if t.ndim != 2 or t.shape[1] != self.d_model:
            raise ValueError(f"expected rows [n, {self.d_model}], got {tuple(t.shape)}")
        step = max(1, CHUNK_ELEMENTS // max(1, self.d_model))
        for start in range(0, t.shape[0], step):
            self.merge_moments(batch_moments(t[start : start + step]))
        return self

    def merge_moments(self, packed: Tensor | np.ndarray) -> RunningStats:
        """Merge the output of `batch_moments` (on any device). Returns self."""
        p = torch.as_tensor(packed).detach().to("cpu", torch.float64).numpy()
        d = self.d_model
        if p.shape != (3 + 2 * d,):
            raise ValueError(f"packed moments of length {p.shape[0]} do not match d_model {d}")
        n = round(float(p[0]))
        self._merge(n, p[3 : 3 + d], p[3 + d :], float(p[1]), float(p[2]))
        return self

    def merge(self, other: RunningStats) -> RunningStats:
        """Merge another set of statistics into this one (Chan et al.). Returns self."""
        if other.d_model != self.d_model:
            raise ValueError(f"cannot merge statistics of d_model {other.d_model} into {self.d_model}")
        self._merge(other.count, other._mean, other._m2, other._norm_mean, other._norm_m2)
        return self

    def _merge(
        self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray, norm_mean_b: float, norm_m2_b: float
    ) -> None:
        if n_b == 0:
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + delta * delta * (n_a * n_b / n)
        norm_delta = norm_mean_b - self._norm_mean
        self._norm_mean += norm_delta * (n_b / n)
        self._norm_m2 += norm_m2_b + norm_delta * norm_delta * (n_a * n_b / n)
        self.count = n

    @property
    def mean(self) -> Tensor:
        """[d_model] float64 mean of the rows (zeros when empty)."""
        return torch.from_numpy(self._mean.copy())

    @property
    def var(self) -> Tensor:
        """[d_model] float64 population variance of the rows (zeros when empty)."""
        return torch.from_numpy(self._m2 / self.count if self.count else np.zeros_like(self._m2))

    @property
    def mean_squared_norm(self) -> float:
        """E‖x‖² = Σ_j (var_j + mean_j²): the scale of unit-mean-squared-norm normalisation."""
        if not self.count:
            return 0.0
        return float(np.sum(self._m2 / self.count + self._mean * self._mean))

    @property
    def norm_mean(self) -> float:
        """E‖x‖: mean Euclidean norm of a row."""
        return self._norm_mean

    @property
    def norm_std(self) -> float:
        """Population standard deviation of the row norms."""
        return math.sqrt(max(self._norm_m2, 0.0) / self.count) if self.count else 0.0

    def summary(self) -> dict[str, Any]:
        """The scalars the manifest records: count, mean_squared_norm, norm_mean, norm_std."""
        return {
            "count": self.count,
            "mean_squared_norm": self.mean_squared_norm,
            "norm_mean": self.norm_mean,
            "norm_std": self.norm_std,
        }

    def to_dict(self) -> dict[str, Any]:
        """The exact state as JSON values (floats round-trip exactly through Python's json)."""
        return {
            "d_model": self.d_model,
            "count": self.count,
            "mean": self._mean.tolist(),
            "m2": self._m2.tolist(),
            "norm_mean": self._norm_mean,
            "norm_m2": self._norm_m2,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RunningStats:
        """Inverse of `to_dict`."""
        try:
            out = cls(int(state["d_model"]))
            out.count = int(state["count"])
            out._mean = np.asarray(state["mean"], dtype=np.float64)
            out._m2 = np.asarray(state["m2"], dtype=np.float64)
            out._norm_mean = float(state["norm_mean"])
            out._norm_m2 = float(state["norm_m2"])
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"malformed running statistics ({e})") from e
        if out._mean.shape != (out.d_model,) or out._m2.shape != (out.d_model,):
            raise StoreError("malformed running statistics (vector length differs from d_model)")
        return out

    def save(self, path: Path) -> Written:
        """Write `mean [d]` and `var [d]` (float64) to a safetensors file, durably and atomically.

        The count and the norm statistics go into the file's metadata (as exact float reprs), so
        the file alone restores the statistics.
        """
        tensors = [
            ("mean", "F64", (self.d_model,), [tensor_bytes(self.mean)]),
            ("var", "F64", (self.d_model,), [tensor_bytes(self.var)]),
        ]
        metadata = {
            "count": str(self.count),
            "norm_mean": repr(self._norm_mean),
            "norm_m2": repr(self._norm_m2),
        }
        return write_atomic(path, safetensors_chunks(tensors, metadata))

    @classmethod
    def load(cls, path: Path) -> RunningStats:
        """Read statistics written by `save`."""
        specs, metadata = read_safetensors_header(path)
        try:
            mean_spec, var_spec = specs["mean"], specs["var"]
            count = int(metadata["count"])
            norm_mean = float(metadata["norm_mean"])
            norm_m2 = float(metadata["norm_m2"])
        except (KeyError, ValueError) as e:
            raise StoreError(f"{path} is not a statistics file (missing {e})") from e
        arrays = []
        with open(path, "rb") as f:
            for spec in (mean_spec, var_spec):
                if spec.dtype not in ("F64", "F32") or len(spec.shape) != 1:
                    raise StoreError(
                        f"{path}: statistics must be float vectors, got {spec.dtype} {spec.shape}"
                    )
                f.seek(spec.offset)
                dtype = np.float64 if spec.dtype == "F64" else np.float32
                arrays.append(np.frombuffer(f.read(spec.nbytes), dtype=dtype).astype(np.float64))
        mean, var = arrays
        out = cls(mean.shape[0])
        out.count = count
        out._mean = mean
        out._m2 = var * count
        out._norm_mean = norm_mean
        out._norm_m2 = norm_m2
        return out
