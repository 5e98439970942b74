"""The parts of a run folder (`saescope.runs`); the server works with whichever exist.

    runs/NAME/acts        activation store
    runs/NAME/sae         cfg.json + weights, eval.json, metrics.csv, training_curves.png,
                          eval_density.png
    runs/NAME/index       latent index, complete, of this SAE (`saescope.index.locate`)
    runs/NAME/compare     compare.json: SAEs compared (`saescope compare`); the run's SAEs — sae/,
                          a sweep's sae/*/, and the SAEs a comparison names — with their eval.json

Images are served by their fixed names in `IMAGES`, never by a path a client gives.

This module knows nothing about HTTP or pages.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import SaescopeError
from ..files import read_json
from ..index.format import read_header
from ..index.locate import index_of_sae
from ..runs import ACTS, CIRCUITS, COMPARE_RESULT, INDEX, SAE, SAE_CONFIG, Run, eval_file
from ..sae.formats import load_sae

log = logging.getLogger(__name__)

IMAGES = {
    "training_curves.png": "training curves",
    "eval_density.png": "latent density and L0 on the evaluation tokens",
}
"""Plots the train and eval stages write beside the SAE, by file name."""


class RunSAE(NamedTuple):
    """An SAE of the run, for the overview's comparison table."""

    name: str
    """Its folder, relative to the run when inside it."""
    path: Path
    """Its folder."""
    cfg: dict[str, Any]
    """Its `cfg.json`."""
    evaluation: dict[str, Any] | None
    """Its `eval.json` (None when not evaluated)."""


class RunParts(NamedTuple):
    """What a run folder holds."""

    root: Path
    """The run folder."""
    acts: Path | None
    """The activation store (None when absent)."""
    sae: Path | None
    """The SAE folder (None when absent)."""
    sae_cfg: dict[str, Any] | None
    """Its `cfg.json`."""
    eval: dict[str, Any] | None
    """Its `eval.json` (None when not evaluated)."""
    index_dir: Path | None
    """The complete latent index (None when absent or unfinished)."""
    images: tuple[str, ...]
    """The names in `IMAGES` present beside the SAE."""
    comparison: dict[str, Any] | None = None
    """`compare/compare.json` (None when the run has none or it is unreadable)."""
    saes: tuple[RunSAE, ...] = ()
    """Every SAE of the run with its evaluation (see the module docstring)."""

    def image(self, name: str) -> Path | None:
        """The path of a plot by its name in `IMAGES` (None for any other name or when absent)."""
        if name not in IMAGES or name not in self.images or self.sae is None:
            return None
        return self.sae / name


def _json_or_none(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except SaescopeError as e:
        log.warning("ignoring %s: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def _index_or_none(run: Run, has_sae: bool) -> Path | None:
    """The run's complete index: of the run's SAE when it has one (another SAE's index is not
    shown beside it), else whatever complete index it holds."""
    if INDEX not in run.parts():
        return None
    try:
        if has_sae:
            return index_of_sae(load_sae(run.sae).file_tensors(), run.sae)
        read_header(run.index)
    except SaescopeError as e:
        log.warning("not using %s: %s", run.index, e)
        return None
    return run.index


def run_saes(root: Path, comparison: dict[str, Any] | None) -> tuple[RunSAE, ...]:
    """The run's SAE, a sweep's SAEs under it, and the SAEs its comparison names, once each."""
    run = Run(root)
    folders = [run.sae, *sorted(p.parent for p in run.sae.glob(f"*/{SAE_CONFIG}"))]
    folders += [Path(p) for p in (comparison or {}).get("resolved", [])]
    found: list[RunSAE] = []
    seen: set[Path] = set()
    for folder in folders:
        cfg = _json_or_none(folder / SAE_CONFIG)
        if cfg is None or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        try:
            name = str(folder.resolve().relative_to(root.resolve()))
        except ValueError:
            name = str(folder)
        found.append(RunSAE(name, folder, cfg, _json_or_none(eval_file(folder))))
    return tuple(found)


def find_run_parts(root: Path) -> RunParts:
    """The parts of the run at `root`; SaescopeError when it is no folder or holds no part."""
    root = Path(root)
    if not root.is_dir():
        raise SaescopeError(f"{root} is not a run folder (no such folder)")
    run = Run(root)
    present = run.parts()
    acts = run.acts if ACTS in present else None
    sae = run.sae if SAE in present else None
    sae_cfg = _json_or_none(run.sae / SAE_CONFIG) if sae else None
    evaluation = _json_or_none(eval_file(run.sae)) if sae else None
    index = _index_or_none(run, sae is not None)
    images = tuple(name for name in IMAGES if sae is not None and (sae / name).is_file())
    if acts is None and sae is None and index is None and not run.circuits.is_dir():
        raise SaescopeError(
            f"{root} holds no run parts (expected {ACTS}/, {SAE}/, {INDEX}/ or {CIRCUITS}/ inside it)"
        )
    comparison = _json_or_none(run.compare / COMPARE_RESULT)
    return RunParts(
        root, acts, sae, sae_cfg, evaluation, index, images, comparison, run_saes(root, comparison)
    )


__all__ = ["IMAGES", "RunParts", "RunSAE", "find_run_parts"]
