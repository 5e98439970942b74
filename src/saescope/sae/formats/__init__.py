"""SAE file formats, one per file: native (saescope's own), SAELens, sparsify, Gemma Scope, Llama Scope.

`READERS[name](path) -> SparseAutoencoder` and `WRITERS[name](sae, folder) -> folder`, for exactly
the format names `saescope.config.convert` declares (`FORMATS_IN`, `FORMATS_OUT`: the choices of
`convert --from/--to`, known there without importing this package); a converted SAE reproduces the
source's encode and decode to float tolerance. `detect_format` tells which format a folder holds
by its files, `read_sae_folder` reads a folder in whichever it is (an unknown one is an error
listing the files found), and `MARKERS` names the files that mark an SAE folder (what the hub
resolver looks for in a repository). The `saescope convert` stage (`saescope.convert`) is built on
these.
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
from .llamascope import LLAMASCOPE_CONFIG, LLAMASCOPE_WEIGHTS, load_llamascope
from .native import FORMAT, WEIGHTS_FILE, load_sae, save_sae
from .saelens import SAELENS_WEIGHTS, load_saelens, save_saelens
from .sparsify import load_sparsify, save_sparsify

READERS: dict[str, Callable[[Path], SparseAutoencoder]] = {
    "native": load_sae,
    "saelens": load_saelens,
    "sparsify": load_sparsify,
    "gemmascope": load_gemmascope,
    "llamascope": load_llamascope,
}


def refuse_one_for_a_set(sae: SparseAutoencoder, folder: Path) -> Path:
    """circuit-tracer holds a whole transcoder set (`saescope.convert` writes one)."""
    raise SaescopeError(
        "circuit-tracer holds a set of transcoders, one per layer from 0: convert the set's folder "
        "(runs/NAME/transcoders), not one SAE"
    )


WRITERS: dict[str, Callable[[SparseAutoencoder, Path], Path]] = {
    "native": save_sae,
    "saelens": save_saelens,
    "sparsify": save_sparsify,
    "circuit-tracer": refuse_one_for_a_set,
}
if list(READERS) != list(FORMATS_IN) or list(WRITERS) != list(FORMATS_OUT):
    raise TypeError(f"the formats implemented {list(READERS)} → {list(WRITERS)} are not the ones declared")


MARKERS = (CFG_FILE, GEMMASCOPE_FILE, LLAMASCOPE_CONFIG)
"""Files whose presence makes a folder a candidate SAE folder (its format then read by `detect_format`)."""


def detect_format(folder: Path) -> str | None:
    """Which format a folder holds by its files (None when it holds no SAE, "unknown" when its
    `cfg.json` is no format saescope reads)."""
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        if (folder / GEMMASCOPE_FILE).is_file():
            return "gemmascope"
        if (folder / LLAMASCOPE_CONFIG).is_file() and (folder / LLAMASCOPE_WEIGHTS).is_file():
            return "llamascope"
        return None
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


def files_of(folder: Path, most: int = 12) -> str:
    """The files in `folder` (and one level below), for an error message."""
    if not folder.is_dir():
        return "no such folder"
    names = sorted(
        str(p.relative_to(folder)) + ("/" if p.is_dir() else "")
        for p in [*folder.iterdir(), *(q for d in folder.iterdir() if d.is_dir() for q in d.iterdir())]
    )
    if not names:
        return "it is empty"
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names) - most} more)" if len(names) > most else "")


def read_sae_folder(folder: Path) -> tuple[SparseAutoencoder, str]:
    """The SAE in `folder` read in the format its files show, and that format's name; an unknown
    format is an error listing the files found."""
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")
    fmt = detect_format(folder)
    if fmt is None or fmt == "unknown":
        raise SaescopeError(
            f"{folder}: no SAE format recognised (files: {files_of(folder)}); saescope reads "
            f"{', '.join(FORMATS_IN)} folders"
        )
    return READERS[fmt](folder), fmt


__all__ = [
    "CFG_FILE",
    "FORMAT",
    "FORMATS_IN",
    "FORMATS_OUT",
    "MARKERS",
    "READERS",
    "WEIGHTS_FILE",
    "WRITERS",
    "detect_format",
    "files_of",
    "load_gemmascope",
    "load_llamascope",
    "load_sae",
    "load_saelens",
    "load_sparsify",
    "read_sae_folder",
    "save_sae",
    "save_saelens",
    "save_sparsify",
]
