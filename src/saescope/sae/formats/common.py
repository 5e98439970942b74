"""Pieces every SAE file format shares: reading safetensors with errors that name the file,
checking tensor shapes, building an SAE of a config's architecture, folding format differences
into the weights (in float64).

This module knows nothing about any one format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from ...errors import SaescopeError
from ...files import DTYPE_NAMES, json_safe, read_json_object
from ...runs import SAE_CONFIG
from ..base import SAEConfig, SparseAutoencoder
from ..record import TrainingRecord
from ..registry import get_architecture

CFG_FILE = SAE_CONFIG
NATIVE_FORMAT = "saescope.sae/1"
"""`format` of a native saescope SAE's cfg.json."""


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """All tensors of a safetensors file (on CPU), or a SaescopeError naming the file."""
    if not path.is_file():
        raise SaescopeError(f"missing {path.name} in {path.parent}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:  # type: ignore[no-untyped-call]
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as e:  # safetensors raises its own error types for corrupt headers and data
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SaescopeError(f"cannot read {path}: corrupt or truncated safetensors file ({first})") from None


def check_shapes(
    tensors: dict[str, Tensor], expected: dict[str, tuple[int, ...]], source: Path, described: str
) -> None:
    """Every expected tensor present with its shape, or a SaescopeError naming the first that is not."""
    for name, shape in expected.items():
        if name not in tensors:
            raise SaescopeError(
                f"{source} has no tensor {name!r} (a {described} needs {', '.join(expected)})"
            )
        if tuple(tensors[name].shape) != shape:
            raise SaescopeError(
                f"{source}: {name} has shape {list(tensors[name].shape)} but {described} needs {list(shape)}"
            )
        if not tensors[name].is_floating_point():
            raise SaescopeError(
                f"{source}: {name} has dtype {tensors[name].dtype}, expected a floating-point type"
            )


def build_sae(
    cfg: SAEConfig, source: Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> SparseAutoencoder:
    """An SAE of cfg's architecture (random-free: zero weights), errors naming `source`."""
    try:
        cls = get_architecture(cfg.architecture)
        return cls(cfg, device=device, dtype=dtype)
    except SaescopeError as e:
        raise SaescopeError(f"{source}: {e}") from None


def require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")


def read_foreign_config(folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """(path, contents) of the `cfg.json` of a folder said to hold an SAE in the `name` format
    (SAELens, sparsify): a missing folder or a native saescope SAE is refused with the way out."""
    require_folder(folder)
    cfg_path = folder / CFG_FILE
    raw = read_json_object(cfg_path, what="an SAE config")
    if raw.get("format") == NATIVE_FORMAT:
        raise SaescopeError(f"{folder} holds a native saescope SAE, not {name} one (use --from native)")
    return cfg_path, raw


def int_field(cfg: dict[str, Any], key: str, source: Path) -> int:
    value = cfg.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SaescopeError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def parse_dtype(name: Any, fallback: torch.dtype) -> torch.dtype:
    """A torch dtype from a format's dtype string (`float32`, `torch.bfloat16`), else `fallback`."""
    if isinstance(name, str) and name.removeprefix("torch.") in DTYPE_NAMES:
        dtype: torch.dtype = getattr(torch, name.removeprefix("torch."))
        return dtype
    return fallback


def fold_b_dec_into_b_enc(W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
    """b_enc + b_dec @ W_enc: (x − b_dec) @ W_enc + that == x @ W_enc + b_enc."""
    return b_enc + b_dec @ W_enc


def assemble(
    cfg: SAEConfig, tensors: dict[str, Tensor], source: Path, dtype: torch.dtype
) -> SparseAutoencoder:
    """Build an SAE of cfg's architecture holding `tensors` (float64, native layout) in `dtype`."""
    sae = build_sae(cfg, source, dtype=dtype)
    try:
        sae.load_file_tensors({name: t.to(dtype) for name, t in tensors.items()})
    except SaescopeError as e:
        raise SaescopeError(f"{source}: {e}") from None
    return sae.eval()


def provenance(fmt: str, source: Path, **details: Any) -> TrainingRecord:
    """The `training` record of an imported SAE: where it came from."""
    return TrainingRecord(source={"format": fmt, "path": str(source), **json_safe(details)})
