"""SAE file formats, one per file: native (saescope's own), SAELens, sparsify, Gemma Scope.

`READERS[name](path) -> SparseAutoencoder` and `WRITERS[name](sae, folder) -> folder`, for exactly
the format names `saescope.config.convert` declares (`FORMATS_IN`, `FORMATS_OUT`: the choices of
`convert --from/--to`, known there without importing this package); a converted SAE reproduces the
source's encode and decode to float tolerance. `detect_format` tells which format a folder holds.
The `saescope convert` stage (`saescope.convert`) is built on these.
This package knows nothing about training or stages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...config.convert import FORMATS_IN, FORMATS_OUT
from ...errors import SaescopeError
from ...files import read_json_object
from ..base import SparseAutoencoder
from .common import CFG_FILE
from .gemmascope import GEMMASCOPE_FILE, load_gemmascope
from .native import FORMAT, WEIGHTS_FILE, load_sae, save_sae
from .saelens import SAELENS_WEIGHTS, load_saelens, save_saelens
from .sparsify import load_sparsify, save_sparsify

READERS: dict[str, Callable[[Path], SparseAutoencoder]] = {
    "native": load_sae,
    "saelens": load_saelens,
    "sparsify": load_sparsify,
    "gemmascope": load_gemmascope,
}
WRITERS: dict[str, Callable[[SparseAutoencoder, Path], Path]] = {
    "native": save_sae,
    "saelens": save_saelens,
    "sparsify": save_sparsify,
}
if list(READERS) != list(FORMATS_IN) or list(WRITERS) != list(FORMATS_OUT):
    raise TypeError(f"the formats implemented {list(READERS)} → {list(WRITERS)} are not the ones declared")


def detect_format(folder: Path) -> str | None:
    """Which format a folder holds by its files (None when it holds no SAE)."""
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        return "gemmascope" if (folder / GEMMASCOPE_FILE).is_file() else None
    try:
        raw = read_json_object(cfg_path)
    except SaescopeError:
        return "unknown"
    if raw.get("format") == FORMAT:
        return "native"
    if (folder / SAELENS_WEIGHTS).is_file():
        return "saelens"
    if "num_latents" in raw or "expansion_factor" in raw:
        return "sparsify"
    return "unknown"


__all__ = [
    "CFG_FILE",
    "FORMAT",
    "FORMATS_IN",
    "FORMATS_OUT",
    "READERS",
    "WEIGHTS_FILE",
    "WRITERS",
    "detect_format",
    "load_gemmascope",
    "load_sae",
    "load_saelens",
    "load_sparsify",
    "save_sae",
    "save_saelens",
    "save_sparsify",
]
