"""Gemma Scope: `params.npz` with `W_enc`, `W_dec`, `b_enc`, `b_dec`, `threshold`, a JumpReLU whose
pre-activation is x @ W_enc + b_enc (b_dec is folded into b_enc on import); import only.

This module reads files only.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import SaescopeError
from ...files import DTYPE_NAMES, dtype_name
from ..base import SAEConfig, SparseAutoencoder
from .common import assemble, check_shapes, fold_b_dec_into_b_enc, provenance

GEMMASCOPE_FILE = "params.npz"


def load_gemmascope(path: str | Path) -> SparseAutoencoder:
    """Import a Gemma Scope `params.npz` (the file, or a folder holding it) as a JumpReLU SAE."""
    path = Path(path)
    file = path / GEMMASCOPE_FILE if path.is_dir() else path
    if not file.is_file():
        raise SaescopeError(f"Gemma Scope params not found: {file}")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SaescopeError(f"cannot read {file}: {e}") from None
    if "W_enc" not in arrays or arrays["W_enc"].ndim != 2:
        raise SaescopeError(
            f"{file} has no 2-D W_enc (a Gemma Scope params.npz holds W_enc, W_dec, b_enc, b_dec, threshold)"
        )
    d_in, d_sae = (int(n) for n in arrays["W_enc"].shape)
    tensors = {name: torch.from_numpy(a.copy()) for name, a in arrays.items() if a.dtype.kind == "f"}
    expected = {
        "W_enc": (d_in, d_sae),
        "b_enc": (d_sae,),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
        "threshold": (d_sae,),
    }
    check_shapes(tensors, expected, file, f"Gemma Scope SAE with d_in={d_in}, d_sae={d_sae}")
    dtype = tensors["W_enc"].dtype if dtype_name(tensors["W_enc"].dtype) in DTYPE_NAMES else torch.float32
    t = {name: tensors[name].double() for name in expected}
    t["b_enc"] = fold_b_dec_into_b_enc(t["W_enc"], t["b_enc"], t["b_dec"])
    t["threshold"] = t["threshold"].clamp_min(0)
    cfg = SAEConfig(
        architecture="jumprelu",
        d_in=d_in,
        d_sae=d_sae,
        dtype=dtype_name(dtype),
        training=provenance("gemmascope", file),
    )
    return assemble(cfg, t, file, dtype)
