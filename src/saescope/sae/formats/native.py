"""The native SAE format: a folder with `cfg.json` and `sae.safetensors`.

`cfg.json` is `SAEConfig.to_dict()` plus `"format": "saescope.sae/1"`; `sae.safetensors` holds
`W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]` (+ `threshold [d_sae]` for
JumpReLU, BatchTopK and Matryoshka; + `r_mag [d_sae]`, `b_mag [d_sae]` for gated, whose `b_enc` is the
gate's bias). Files are written atomically (`saescope.files`), so a crash never leaves a
half-written SAE, and other files in the folder (checkpoints, logs) are left alone. Every problem
with a folder is a `SaescopeError` naming it.

A *linked* folder (a published SAE's run folder: `saescope.sae.source`) has no weights file: its
`cfg.json` names them in `weights`, a published SAE pinned to its commit
(`hf:OWNER/REPO/PATH@<commit>`), and `load_sae` loads them from the Hugging Face cache with the
folder's config.

This module knows nothing about training or about other libraries' formats.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from ...errors import SaescopeError
from ...files import dtype_name, read_json_object, write_json, write_safetensors
from ...runs import SAE_WEIGHTS
from ..base import SAEConfig, SparseAutoencoder
from .common import CFG_FILE, NATIVE_FORMAT, build_sae, check_shapes, read_safetensors

log = logging.getLogger(__name__)

FORMAT = NATIVE_FORMAT
WEIGHTS_FILE = SAE_WEIGHTS


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
    for key in ("normalization", "training", "hyperparams"):
        if key in data and not isinstance(data[key], dict):
            raise SaescopeError(f"{source}: {key} must be an object, got {data[key]!r}")
    ignored = sorted(set(data) - known - {"format"})
    if ignored:
        log.debug("%s: ignoring unknown keys %s", source, ignored)
    return SAEConfig(**{k: v for k, v in data.items() if k in known})


def save_sae(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Write `sae` to `folder` in the native format (creating it; other files there are kept)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = sae.file_tensors()
    cfg = sae.cfg.with_updates(dtype=dtype_name(sae.W_enc.dtype))
    write_safetensors(folder / WEIGHTS_FILE, tensors, metadata={"format": FORMAT})
    write_json(folder / CFG_FILE, {"format": FORMAT, **cfg.to_dict()}, indent=2)
    log.info("saved %s SAE (%d latents) to %s", sae.architecture, sae.d_sae, folder)
    return folder


def load_sae(
    folder: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> SparseAutoencoder:
    """Load a native SAE folder (in `dtype`, default the file's; on `device`, default CPU), in eval mode."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")
    if not (folder / CFG_FILE).is_file():
        raise SaescopeError(f"missing {CFG_FILE} in {folder} (not an SAE folder)")
    cfg_path = folder / CFG_FILE
    data = read_json_object(cfg_path, what="an SAE config")
    fmt = data.get("format")
    if fmt != FORMAT:
        hint = "" if fmt else "; an SAE from SAELens or sparsify is imported with `saescope convert`"
        raise SaescopeError(f"{cfg_path} is not a saescope SAE (format {fmt!r}, expected {FORMAT!r}){hint}")
    if "weights" in data:  # a linked folder: the weights are a published SAE's (`saescope.sae.source`)
        from ..source import load_linked

        linked = load_linked(folder, data).to(device=device, dtype=dtype)
        linked.cfg = linked.cfg.with_updates(dtype=dtype_name(linked.W_enc.dtype))
        return linked.eval()
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
