"""The native SAE format: a folder with `cfg.json` and `sae.safetensors`.

`cfg.json` is `SAEConfig.to_dict()` plus `"format": "saescope.sae/1"`; `sae.safetensors` holds
`W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]` (+ `threshold [d_sae]` for
JumpReLU and BatchTopK). Files are written atomically (temporary name, fsync, rename), so a crash
never leaves a half-written SAE, and other files in the folder (checkpoints, logs) are left alone.
Every problem with a folder is a `SaescopeError` naming it.

This module knows nothing about training or about other libraries' formats (see `convert`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..errors import SaescopeError
from .base import SAEConfig, SparseAutoencoder
from .registry import get_architecture

log = logging.getLogger(__name__)

FORMAT = "saescope.sae/1"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"


# ----- atomic writes (also used by `convert`) ---------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write `obj` as indented JSON to `path` via a temporary file, fsync and rename."""
    tmp = _temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_safetensors_atomic(
    tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write contiguous CPU copies of `tensors` to `path` via a temporary file, fsync and rename."""
    tmp = _temp_path(path)
    try:
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata
        )
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ----- reading files (also used by `convert`) ---------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or a SaescopeError naming what is wrong."""
    if not path.is_file():
        raise SaescopeError(f"missing {path.name} in {path.parent}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SaescopeError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise SaescopeError(f"{path} does not hold a JSON object")
    return data


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


# ----- the native format ------------------------------------------------------------------------
def config_from_dict(data: dict[str, Any], source: Path) -> SAEConfig:
    """An SAEConfig from cfg.json's contents (unknown keys are ignored, for newer versions)."""
    known = {f.name for f in fields(SAEConfig)}
    for key in ("architecture", "d_in", "d_sae"):
        if key not in data:
            raise SaescopeError(f"{source} lacks {key!r}")
    if not isinstance(data["architecture"], str):
        raise SaescopeError(f"{source}: architecture must be a string, got {data['architecture']!r}")
    for key in ("d_in", "d_sae", "k"):
        value = data.get(key)
        if key == "k" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise SaescopeError(f"{source}: {key} must be an integer, got {value!r}")
    for key in ("normalization", "training"):
        if key in data and not isinstance(data[key], dict):
            raise SaescopeError(f"{source}: {key} must be an object, got {data[key]!r}")
    ignored = sorted(set(data) - known - {"format"})
    if ignored:
        log.debug("%s: ignoring unknown keys %s", source, ignored)
    return SAEConfig(**{k: v for k, v in data.items() if k in known})


def build_sae(
    cfg: SAEConfig, source: Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> SparseAutoencoder:
    """An SAE of cfg's architecture (random-free: zero weights), errors naming `source`."""
    try:
        cls = get_architecture(cfg.architecture)
        return cls(cfg, device=device, dtype=dtype)
    except SaescopeError as e:
        raise SaescopeError(f"{source}: {e}") from None


def save_sae(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Write `sae` to `folder` in the native format (creating it; other files there are kept)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = sae.file_tensors()
    cfg = sae.cfg.with_updates(dtype=dtype_name(sae.W_enc.dtype))
    write_safetensors_atomic(tensors, folder / WEIGHTS_FILE, metadata={"format": FORMAT})
    write_json_atomic({"format": FORMAT, **cfg.to_dict()}, folder / CFG_FILE)
    log.info("saved %s SAE (%d latents) to %s", sae.architecture, sae.d_sae, folder)
    return folder


def load_sae(
    folder: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> SparseAutoencoder:
    """Load a native SAE folder (in `dtype`, default the file's; on `device`, default CPU), in eval mode."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")
    cfg_path = folder / CFG_FILE
    data = read_json(cfg_path)
    fmt = data.get("format")
    if fmt != FORMAT:
        hint = "" if fmt else "; an SAE from SAELens or sparsify is imported with `saescope convert`"
        raise SaescopeError(f"{cfg_path} is not a saescope SAE (format {fmt!r}, expected {FORMAT!r}){hint}")
    cfg = config_from_dict(data, cfg_path)
    weights_path = folder / WEIGHTS_FILE
    tensors = read_safetensors(weights_path)
    file_dtype = tensors["W_enc"].dtype if "W_enc" in tensors else torch.float32
    sae = build_sae(cfg, cfg_path, device=device, dtype=dtype or file_dtype)
    expected = {name: tuple(t.shape) for name, t in sae.file_tensors().items()}
    check_shapes(
        tensors, expected, weights_path, f"{cfg.architecture} SAE with d_in={cfg.d_in}, d_sae={cfg.d_sae}"
    )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        log.warning("%s: ignoring unexpected tensors %s", weights_path, extra)
    try:
        sae.load_file_tensors(tensors)
    except SaescopeError as e:
        raise SaescopeError(f"{weights_path}: {e}") from None
    sae.cfg = cfg.with_updates(dtype=dtype_name(sae.W_enc.dtype))
    return sae.eval()
