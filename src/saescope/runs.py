"""A run's layout: the one place that knows the names of a run's folders and files.

    runs/NAME/
      acts/        activation store      manifest.json + shards
      sae/         trained SAE           cfg.json + sae.safetensors, eval.json beside them
      index/       latent index          index.json + Parquet files
      dashboard/   static feature pages  index.html + latents/

Every stage finds its neighbours through these functions — the SAE beside a store, the index
beside an SAE, the dashboard beside an index — and every artifact module takes its file name from
here. A part exists when its marker file does (`Run.parts`); whether it is complete and whose it
is (an index answers for one SAE) is for the part's own module to say.

This module knows nothing about what the files hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ACTS = "acts"
"""The activation store's folder in a run."""
SAE = "sae"
"""The SAE's folder in a run."""
INDEX = "index"
"""The latent index's folder in a run."""
DASHBOARD = "dashboard"
"""The static dashboard's folder in a run."""

STORE_MANIFEST = "manifest.json"
"""An activation store's manifest (its marker file)."""
SAE_CONFIG = "cfg.json"
"""An SAE folder's configuration (its marker file)."""
SAE_WEIGHTS = "sae.safetensors"
"""An SAE folder's weights (native and sparsify layouts)."""
SAE_EVAL = "eval.json"
"""The evaluation written beside an SAE."""
INDEX_HEADER = "index.json"
"""A latent index's header (its marker file)."""
DASHBOARD_PAGE = "index.html"
"""A static dashboard's front page."""


@dataclass(frozen=True)
class Run:
    """The folders of one run (they need not exist)."""

    root: Path
    """The run folder."""

    @property
    def acts(self) -> Path:
        return self.root / ACTS

    @property
    def sae(self) -> Path:
        return self.root / SAE

    @property
    def index(self) -> Path:
        return self.root / INDEX

    @property
    def dashboard(self) -> Path:
        return self.root / DASHBOARD

    def parts(self) -> dict[str, Path]:
        """The parts present (by their marker files): name (`acts`, `sae`, `index`) → folder."""
        markers = {
            ACTS: (self.acts, STORE_MANIFEST),
            SAE: (self.sae, SAE_CONFIG),
            INDEX: (self.index, INDEX_HEADER),
        }
        return {name: folder for name, (folder, marker) in markers.items() if (folder / marker).is_file()}


def run_of(part: Path | str) -> Run:
    """The run a part's folder (`runs/NAME/sae`, …) belongs to: its parent."""
    return Run(Path(part).parent)


def sae_beside(store: Path | str) -> Path:
    """The SAE folder of the run a store belongs to (`runs/NAME/acts` → `runs/NAME/sae`)."""
    return run_of(store).sae


def index_beside(sae: Path | str) -> Path:
    """The latent index folder of the run an SAE belongs to (`runs/NAME/sae` → `runs/NAME/index`)."""
    return run_of(sae).index


def dashboard_beside(index: Path | str) -> Path:
    """The dashboard folder of the run an index belongs to (`runs/NAME/index` → `.../dashboard`)."""
    return run_of(index).dashboard


def eval_file(sae: Path | str) -> Path:
    """Where an SAE's evaluation is written."""
    return Path(sae) / SAE_EVAL


def is_sae_folder(folder: Path | str) -> bool:
    """Whether `folder` holds an SAE configuration."""
    return (Path(folder) / SAE_CONFIG).is_file()


def is_index_folder(folder: Path | str) -> bool:
    """Whether `folder` holds a latent index header (complete or not)."""
    return (Path(folder) / INDEX_HEADER).is_file()


__all__ = [
    "ACTS",
    "DASHBOARD",
    "DASHBOARD_PAGE",
    "INDEX",
    "INDEX_HEADER",
    "SAE",
    "SAE_CONFIG",
    "SAE_EVAL",
    "SAE_WEIGHTS",
    "STORE_MANIFEST",
    "Run",
    "dashboard_beside",
    "eval_file",
    "index_beside",
    "is_index_folder",
    "is_sae_folder",
    "run_of",
    "sae_beside",
]
