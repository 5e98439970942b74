"""Neuronpedia's dataset-export layout: the folders, files and row fields its importer reads.

Taken from Neuronpedia's repository (github.com/hijohnnylin/neuronpedia, commit ebb8426, 2026-08-20):
the layout, batch sizes and columns from its exporter `utils/neuronpedia-utils/neuronpedia_utils/
export-data.py`; what is read from its importer, `apps/webapp/app/api/admin/import/route.ts` with
`apps/webapp/lib/db/import.ts` (every row's keys become the columns of the table named, typed as
`apps/webapp/prisma/schema.prisma` declares them, `ON CONFLICT DO NOTHING`):

    OUT/<modelId>/<sourceId>/
      release.jsonl       one SourceRelease row: name, description, creatorName, creatorId, urls, …
      model.jsonl         one Model row: id, displayName, layers, neuronsPerLayer, dimension, owner, …
      sourceset.jsonl     one SourceSet row: modelId, name, description, creatorName, releaseName, …
      source.jsonl        one Source row: id, modelId, setName, dataset, num_prompts, hfRepoId, …
      features/batch-<N>.jsonl.gz      Neuron rows of latents [1024·N, 1024·N + 1023], by latent
      activations/batch-<N>.jsonl.gz   Activation rows of those same latents (each a window of
                                       tokens with the latent's activation on each)
      explanations/batch-<N>.jsonl.gz  Explanation rows, 1,024 a batch, by latent

Each row names its model (`modelId`), its source as `layer` (the source id, `<layer>-<source
set>`) and its latent as `index`, a string (the tables' key type); `creatorId`/`authorId` is a user
id of the importing instance. The batch files are gzipped JSON Lines (compression level 5, as
Neuronpedia's own), every row of a file with the same keys (the importer takes the columns from
the first). Files are written atomically. docs/formats.md lists every column with its type.

This module knows nothing about indexes, SAEs or what the rows mean.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import SaescopeError
from ..files import write_atomic

BATCH = 1024
"""Rows (features, explanations) or latents (activations) per batch file (Neuronpedia's
FEATURES_EXPLANATIONS_BATCH_SIZE and ACTIVATIONS_BATCH_SIZE)."""
FEATURES = "features"
ACTIVATIONS = "activations"
EXPLANATIONS = "explanations"
KINDS = (FEATURES, ACTIVATIONS, EXPLANATIONS)
RELEASE, MODEL, SOURCE_SET, SOURCE = "release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"
METADATA = (RELEASE, MODEL, SOURCE_SET, SOURCE)

FEATURE_FIELDS = (
    "modelId",
    "layer",
    "index",
    "creatorId",
    "sourceSetName",
    "maxActApprox",
    "frac_nonzero",
    "freq_hist_data_bar_heights",
    "freq_hist_data_bar_values",
    "pos_str",
    "pos_values",
    "neg_str",
    "neg_values",
    "topkCosSimIndices",
    "topkCosSimValues",
)
"""The Neuron columns written (the others keep the table's defaults)."""
ACTIVATION_FIELDS = (
    "id",
    "modelId",
    "layer",
    "index",
    "creatorId",
    "dataSource",
    "dataIndex",
    "tokens",
    "values",
    "maxValue",
    "maxValueTokenIndex",
    "minValue",
    "qualifyingTokenIndex",
)
"""The Activation columns written."""
EXPLANATION_FIELDS = (
    "id",
    "modelId",
    "layer",
    "index",
    "authorId",
    "description",
    "typeName",
    "explanationModelName",
    "notes",
)
"""The Explanation columns written."""

_BATCH_FILE = re.compile(r"^batch-(\d+)\.jsonl\.gz$")


class Export(NamedTuple):
    """One source of a Neuronpedia export, read back."""

    folder: Path
    """The source's folder."""
    model_id: str
    """Neuronpedia's model id (the folder above it)."""
    source_id: str
    """The source id (the folder's name)."""
    source: dict[str, Any]
    """Its source.jsonl row ({} when absent)."""
    features: list[dict[str, Any]]
    """Neuron rows, in file order."""
    activations: list[dict[str, Any]]
    """Activation rows, in file order."""
    explanations: list[dict[str, Any]]
    """Explanation rows, in file order."""


def batch_file(folder: Path, kind: str, n: int) -> Path:
    """The file of batch `n` of `kind` (features, activations, explanations) in a source folder."""
    return folder / kind / f"batch-{n}.jsonl.gz"


def jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as JSON Lines (UTF-8, one object a line)."""
    return "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows).encode()


def write_rows(path: Path, rows: Sequence[dict[str, Any]], compressed: bool = True) -> None:
    """Write `rows` to `path` atomically, gzipped when `compressed`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = jsonl(rows)
    write_atomic(path, gzip.compress(data, compresslevel=5, mtime=0) if compressed else data)


def remove_batches_from(folder: Path, kind: str, first: int) -> None:
    """Delete batch files of `kind` numbered `first` and above (left by an earlier, larger export)."""
    for path in (folder / kind).glob("batch-*.jsonl.gz"):
        m = _BATCH_FILE.match(path.name)
        if m and int(m.group(1)) >= first:
            path.unlink()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a (gzipped) JSON Lines file; an unreadable one is an error naming it."""
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SaescopeError(f"cannot read {path}: {e}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise SaescopeError(f"{path}: every line must be a JSON object")
    return rows


def _batches(folder: Path, kind: str) -> list[Path]:
    found = [
        (int(m.group(1)), p)
        for p in (folder / kind).glob("batch-*.jsonl.gz")
        if (m := _BATCH_FILE.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def is_source_folder(folder: Path) -> bool:
    """Whether `folder` looks like one source of an export."""
    return (folder / SOURCE).is_file() or any((folder / kind).is_dir() for kind in KINDS)


def find_source(folder: Path) -> Path:
    """The source folder `folder` is, or the only one within two levels below it."""
    if not folder.is_dir():
        raise SaescopeError(f"no such export folder: {folder}")
    if is_source_folder(folder):
        return folder
    found = sorted(p for p in [*folder.glob("*"), *folder.glob("*/*")] if p.is_dir() and is_source_folder(p))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SaescopeError(f"{folder} holds no Neuronpedia source (no {SOURCE}, {', '.join(KINDS)}/ in it)")
    names = ", ".join(str(p.relative_to(folder)) for p in found[:6])
    raise SaescopeError(f"{folder} holds {len(found)} sources ({names}); give the one to read")


def read_export(folder: Path) -> Export:
    """The source at (or below) `folder`, every batch read."""
    source_dir = find_source(Path(folder))
    source_rows = read_rows(source_dir / SOURCE) if (source_dir / SOURCE).is_file() else []
    kinds = {kind: [row for path in _batches(source_dir, kind) for row in read_rows(path)] for kind in KINDS}
    return Export(
        source_dir,
        source_dir.parent.name,
        source_dir.name,
        source_rows[0] if source_rows else {},
        kinds[FEATURES],
        kinds[ACTIVATIONS],
        kinds[EXPLANATIONS],
    )


__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_FIELDS",
    "BATCH",
    "EXPLANATIONS",
    "EXPLANATION_FIELDS",
    "FEATURES",
    "FEATURE_FIELDS",
    "METADATA",
    "MODEL",
    "RELEASE",
    "SOURCE",
    "SOURCE_SET",
    "Export",
    "batch_file",
    "find_source",
    "read_export",
    "read_rows",
    "remove_batches_from",
    "write_rows",
]
