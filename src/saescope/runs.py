"""A run's layout: the one place that knows the names of a run's folders and files.

    runs/NAME/
      acts/        activation store      manifest.json + shards
      sae/         trained SAE           cfg.json + sae.safetensors, eval.json beside them
      index/       latent index          index.json + Parquet files
      dashboard/   static feature pages  index.html + latents/
      compare/     SAEs compared         compare.json
      transcoders/ transcoder set        one folder per layer (mlp_in_0/, mlp_in_1/, …), each an SAE folder
      circuits/    attribution graphs    NAME.json + NAME.safetensors + NAME.circuit-tracer.json

Every stage finds its neighbours through these functions — the SAE beside a store, the index
beside an SAE, the dashboard beside an index — and every artifact module takes its file name from
here. A part exists when its marker file does (`Run.parts`); whether it is complete and whose it
is (an index answers for one SAE) is for the part's own module to say.

This module knows nothing about what the files hold.
"""

from __future__ import annotations

import re
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
COMPARE = "compare"
"""The folder of a comparison of SAEs (`saescope compare`) in the run of its first SAE."""
TRANSCODERS = "transcoders"
"""The transcoder set's folder in a run (one SAE folder per layer, named by `hookpoint_folder`)."""
CIRCUITS = "circuits"
"""The attribution graphs' folder in a run (`saescope circuit`)."""
GRAPH_SUFFIXES = (".json", ".safetensors", ".circuit-tracer.json")
"""A graph's files (`graph_files`): saescope's JSON, its full matrices, circuit-tracer's graph JSON."""

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
COMPARE_RESULT = "compare.json"
"""A comparison's results."""


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

    @property
    def compare(self) -> Path:
        return self.root / COMPARE

    @property
    def transcoders(self) -> Path:
        return self.root / TRANSCODERS

    @property
    def circuits(self) -> Path:
        return self.root / CIRCUITS

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


def hookpoint_folder(hookpoint: str) -> str:
    """The folder name of one hookpoint's part among several (a store or SAE per hookpoint, a
    transcoder per layer): its short form with every other character an underscore
    (`mlp_in:3` → `mlp_in_3`, `model.layers.3.mlp:input` → `model.layers.3.mlp_input`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", hookpoint)


def graph_files(circuits: Path | str, name: str) -> tuple[Path, Path, Path]:
    """A graph's files in a circuits folder, by `GRAPH_SUFFIXES`."""
    json_file, matrices, circuit_tracer = (Path(circuits) / f"{name}{suffix}" for suffix in GRAPH_SUFFIXES)
    return json_file, matrices, circuit_tracer


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
    "CIRCUITS",
    "COMPARE",
    "COMPARE_RESULT",
    "DASHBOARD",
    "DASHBOARD_PAGE",
    "GRAPH_SUFFIXES",
    "INDEX",
    "INDEX_HEADER",
    "SAE",
    "SAE_CONFIG",
    "SAE_EVAL",
    "SAE_WEIGHTS",
    "STORE_MANIFEST",
    "TRANSCODERS",
    "Run",
    "dashboard_beside",
    "eval_file",
    "graph_files",
    "hookpoint_folder",
    "index_beside",
    "is_index_folder",
    "is_sae_folder",
    "run_of",
    "sae_beside",
]
