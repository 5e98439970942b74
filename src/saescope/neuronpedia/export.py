"""`saescope export RUN --neuronpedia OUT`: a run's latent index in Neuronpedia's dataset-export layout.

    saescope export runs/demo --neuronpedia exports/     # → exports/<model id>/<source id>/…

What each row holds (the layout and field names: `layout`):

- a feature per latent (dead ones too): `maxActApprox` its largest activation and `frac_nonzero`
  its firing frequency on the indexed tokens, its activation histogram (`freq_hist_data_bar_*`:
  bin centres and counts), the tokens its decoder direction promotes and suppresses most through
  the real final norm (`pos_*`, `neg_*`), its nearest decoder directions by cosine (`topkCosSim*`);
- its top activations (`--examples`, ranked), each a window of tokens (`--before`, `--after`)
  with the latent's activation on each, the document it comes from as `dataIndex` and the firing
  token as `qualifyingTokenIndex`;
- every usable stored explanation (`saescope interpret`), with what explained it and its headline
  score as JSON in `notes` (`typeName` and `explanationModelName` left empty: they must name rows
  of the importing instance's config tables);
- the source names the SAE: `hfRepoId`/`hfFolderId` for a published one, the SAELens release and
  id when it came from the registry, and in `notes` (JSON) the SAE as pinned, its weights'
  fingerprint, the index's model, hookpoint, tokens and corpus.

Row ids are derived from what they hold (the same export gives the same ids, so re-importing
skips them). An export of the same source replaces the previous one's files.
This module knows nothing about how the index was built or how explanations were scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from ..config import ModelSettings
from ..config.export import ExportConfig
from ..errors import SaescopeError
from ..example import Example
from ..index.format import IndexHeader
from ..index.reader import Index
from ..interpret.best import Interpretation
from ..interpret.tables import read_interpretations
from ..models import convert_gguf, resolve_model_source
from ..runs import INDEX, is_index_folder
from . import layout as L

log = logging.getLogger(__name__)

NEIGHBOURS = 10
"""Decoder neighbours and promoted/suppressed tokens kept per feature."""
_SITES = {"resid_post": "res", "resid_pre": "res-pre", "mlp_out": "mlp", "attn_out": "att"}
_LAYER = re.compile(r"(?:^|[.:])(\d+)(?:$|[.:])")


class ExportResult(NamedTuple):
    """What `saescope export` wrote."""

    folder: Path
    """The source's folder (OUT/<model id>/<source id>)."""
    model_id: str
    """Neuronpedia's model id."""
    source_id: str
    """The source id."""
    features: int
    """Feature rows (one per latent)."""
    activations: int
    """Activation rows (top windows)."""
    explanations: int
    """Explanation rows."""
    batches: int
    """Feature batch files (1,024 latents each)."""

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "folder": str(self.folder)}

    def render(self) -> str:
        return (
            f"wrote {self.features:,} features, {self.activations:,} top activations and "
            f"{self.explanations:,} explanations in Neuronpedia's layout ({self.batches} "
            f"{'batch' if self.batches == 1 else 'batches'} of {L.BATCH:,}) to {self.folder} "
            f"(model {self.model_id}, source {self.source_id})"
        )


class Names(NamedTuple):
    """How the export names things in Neuronpedia."""

    model_id: str
    source_set: str
    source_id: str
    creator: str


def index_of_run(run: Path) -> Path:
    """The latent index a run folder holds (or `run` itself when it is one)."""
    for candidate in (run, run / INDEX):
        if is_index_folder(candidate):
            return candidate
    raise SaescopeError(f"{run} is neither a run folder holding {INDEX}/ nor a latent index")


def neuronpedia_id(name: str) -> str:
    """A Neuronpedia id from a model's name: after its last `/`, lowercased, other characters as `-`."""
    tail = name.rstrip("/").rsplit("/", 1)[-1].lower()
    return re.sub(r"[^a-z0-9._-]+", "-", tail).strip("-") or "model"


def names_of(cfg: ExportConfig, header: IndexHeader) -> Names:
    """Model id, source set and source id (see `ExportConfig`)."""
    alias = str(header.cfg.get("hookpoint_alias") or header.hookpoint)
    site = _SITES.get(alias.split(":", 1)[0], "sae")
    width = f"{header.d_sae // 1024}k" if header.d_sae % 1024 == 0 else str(header.d_sae)
    source_set = cfg.source_set or f"saescope-{site}-{width}"
    layer = _LAYER.search(alias) or _LAYER.search(header.hookpoint)
    source_id = f"{layer.group(1)}-{source_set}" if layer else source_set
    return Names(cfg.model_id or neuronpedia_id(header.model), source_set, source_id, cfg.creator_id)


def row_id(*parts: Any) -> str:
    """A 25-character id derived from `parts` (the shape of Neuronpedia's cuids)."""
    return "c" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


# ----- rows -------------------------------------------------------------------------------
def feature_row(
    names: Names, stats: dict[str, Any], logits: Any, neighbours: Sequence[Any]
) -> dict[str, Any]:
    """One latent's Neuron row."""
    top = float(stats["max"] or 0.0)
    heights = [float(h) for h in stats.get("histogram") or []] if not stats["dead"] else []
    centres = [top * (i + 0.5) / len(heights) for i in range(len(heights))]
    row = {
        "modelId": names.model_id,
        "layer": names.source_id,
        "index": str(stats["latent"]),
        "creatorId": names.creator,
        "sourceSetName": names.source_set,
        "maxActApprox": top,
        "frac_nonzero": float(stats["frequency"]),
        "freq_hist_data_bar_heights": heights,
        "freq_hist_data_bar_values": centres,
        "pos_str": [t.token for t in logits.top] if logits else [],
        "pos_values": [float(t.effect) for t in logits.top] if logits else [],
        "neg_str": [t.token for t in logits.bottom] if logits else [],
        "neg_values": [float(t.effect) for t in logits.bottom] if logits else [],
        "topkCosSimIndices": [int(n.latent) for n in neighbours],
        "topkCosSimValues": [float(n.cosine) for n in neighbours],
    }
    return {k: row[k] for k in L.FEATURE_FIELDS}


def activation_row(
    names: Names, latent: int, rank: int, example: Example, data_source: str
) -> dict[str, Any]:
    """One top window's Activation row."""
    values = [float(a) for a in example.activations]
    top = max(values, default=0.0)
    row = {
        "id": row_id(names.model_id, names.source_id, latent, rank, example.doc_id, example.position),
        "modelId": names.model_id,
        "layer": names.source_id,
        "index": str(latent),
        "creatorId": names.creator,
        "dataSource": data_source,
        "dataIndex": str(example.doc_id),
        "tokens": [str(t) for t in example.tokens],
        "values": values,
        "maxValue": top,
        "maxValueTokenIndex": values.index(top) if values else 0,
        "minValue": min(values, default=0.0),
        "qualifyingTokenIndex": int(example.focus),
    }
    return {k: row[k] for k in L.ACTIVATION_FIELDS}


def explanation_row(names: Names, interpretation: Interpretation) -> dict[str, Any]:
    """One stored explanation's Explanation row (what made it, as JSON in `notes`)."""
    e, top = interpretation.explanation, interpretation.headline
    notes = {
        "saescope": {
            "explainer": e.explainer,
            "model": e.model,
            "prompt_version": e.prompt_version,
            "headline": None if top is None else f"{top.scorer}/{top.metric}",
            "value": None if top is None else float(top.value),
            "created": interpretation.created.isoformat(),
        }
    }
    row = {
        "id": row_id(names.model_id, names.source_id, e.latent, e.explainer, e.model, e.prompt_version),
        "modelId": names.model_id,
        "layer": names.source_id,
        "index": str(e.latent),
        "authorId": names.creator,
        "description": e.text,
        "typeName": None,
        "explanationModelName": None,
        "notes": json.dumps(notes),
    }
    return {k: row[k] for k in L.EXPLANATION_FIELDS}


# ----- the metadata rows ------------------------------------------------------------------
def model_shape(model: str) -> dict[str, int]:
    """The model's layers, hidden size and MLP width, from its config (no weights are loaded)."""
    from transformers import AutoConfig

    source = resolve_model_source(ModelSettings(model=model))
    try:
        if source.converted:  # a GGUF file: its converted folder (made once, as loading it does)
            config = AutoConfig.from_pretrained(convert_gguf(Path(source.source)))
        else:
            config = AutoConfig.from_pretrained(source.source, revision=source.hub_revision)
    except SaescopeError:
        raise
    except Exception as e:
        raise SaescopeError(f"cannot read the config of {model} (for model.jsonl): {e}") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return {
        "layers": int(getattr(text, "num_hidden_layers", 0) or 0),
        "dimension": int(getattr(text, "hidden_size", 0) or 0),
        "neuronsPerLayer": int(getattr(text, "intermediate_size", 0) or 0),
    }


def published(header: IndexHeader) -> dict[str, Any]:
    """What the index's SAE config says of a published SAE's origin ({} for one trained here)."""
    source = (header.cfg.get("training") or {}).get("source") or {}
    return source if isinstance(source, dict) and source.get("pinned") else {}


def metadata_rows(cfg: ExportConfig, names: Names, header: IndexHeader) -> dict[str, dict[str, Any]]:
    """release.jsonl, model.jsonl, sourceset.jsonl and source.jsonl."""
    origin, corpus = published(header), header.corpus or {}
    registry = origin.get("registry") or {}
    description = f"SAE at {header.hookpoint} of {header.model}, {header.d_sae:,} latents (saescope)"
    notes = {
        "saescope": {
            "sae": origin.get("pinned") or header.sae,
            "sae_sha256": header.sae_sha256,
            "model": header.model,
            "hookpoint": header.hookpoint,
            "d_sae": header.d_sae,
            "tokens": header.tokens,
            "corpus": corpus,
        }
    }
    owner = header.model.split("/", 1)[0] if "/" in header.model else ""
    return {
        L.RELEASE: {
            "name": cfg.release,
            "description": f"SAEs exported by saescope ({cfg.release})",
            "descriptionShort": cfg.release,
            "creatorName": cfg.creator_name,
            "creatorId": names.creator,
            "urls": [],
            "visibility": "PUBLIC",
        },
        L.MODEL: {
            "id": names.model_id,
            "displayName": header.model,
            "displayNameShort": names.model_id,
            "creatorId": names.creator,
            "owner": owner,
            "visibility": "PUBLIC",
            **model_shape(header.model),
        },
        L.SOURCE_SET: {
            "modelId": names.model_id,
            "name": names.source_set,
            "description": description,
            "creatorName": cfg.creator_name,
            "creatorId": names.creator,
            "releaseName": cfg.release,
            "urls": [],
            "visibility": "PUBLIC",
        },
        L.SOURCE: {
            "id": names.source_id,
            "modelId": names.model_id,
            "setName": names.source_set,
            "creatorId": names.creator,
            "hasDashboards": True,
            "inferenceEnabled": False,
            "visibility": "PUBLIC",
            "dataset": corpus.get("dataset"),
            "num_prompts": header.docs,
            "num_tokens_in_prompt": header.stride if header.source == "text" else None,
            "hfRepoId": origin.get("repo"),
            "hfFolderId": origin.get("path"),
            "saelensRelease": registry.get("release"),
            "saelensSaeId": registry.get("sae_id"),
            "notes": json.dumps(notes),
        },
    }


# ----- the stage --------------------------------------------------------------------------
def _latent_batch(
    index: Index, latents: list[int], cfg: ExportConfig
) -> tuple[list[Any], dict[int, list[Example]]]:
    """The statistics rows, logit effects, neighbours and top examples of one batch of latents."""
    stats = index.stats().slice(latents[0], len(latents)).to_pylist()
    logits = index.logit_effects_many(latents, NEIGHBOURS)
    neighbours = index.neighbours_many(latents, NEIGHBOURS)
    examples = index.top_examples_many(latents, cfg.examples, cfg.before, cfg.after)
    return [(s, logits.get(s["latent"]), neighbours.get(s["latent"], [])) for s in stats], examples


def write_batch(folder: Path, n: int, index: Index, cfg: ExportConfig, names: Names) -> int:
    """Write features and activations batch `n`; returns its activation rows."""
    latents = list(range(n * L.BATCH, min((n + 1) * L.BATCH, index.d_sae)))
    per_latent, examples = _latent_batch(index, latents, cfg)
    data_source = str((index.header.corpus or {}).get("dataset") or index.header.store or "")
    features = [feature_row(names, s, lg, nb) for s, lg, nb in per_latent]
    activations = [
        activation_row(names, latent, rank, ex, data_source)
        for latent in latents
        for rank, ex in enumerate(examples.get(latent, []))
    ]
    L.write_rows(L.batch_file(folder, L.FEATURES, n), features)
    L.write_rows(L.batch_file(folder, L.ACTIVATIONS, n), activations)
    return len(activations)


def write_explanations(folder: Path, index: Index, names: Names) -> int:
    """Write every usable stored explanation, 1,024 rows a batch, by latent; returns how many."""
    usable = [i for i in read_interpretations(index.path) if i.explanation.ok and i.explanation.text.strip()]
    usable.sort(key=lambda i: (i.latent, i.explanation.explainer, i.explanation.model))
    rows = [explanation_row(names, i) for i in usable]
    for n in range(0, len(rows), L.BATCH):
        L.write_rows(L.batch_file(folder, L.EXPLANATIONS, n // L.BATCH), rows[n : n + L.BATCH])
    L.remove_batches_from(folder, L.EXPLANATIONS, -(-len(rows) // L.BATCH))
    return len(rows)


def export_neuronpedia(cfg: ExportConfig) -> ExportResult:
    """Write the run's index in Neuronpedia's layout (see the module docstring)."""
    index = Index(index_of_run(Path(cfg.run)))
    header = index.header
    names = names_of(cfg, header)
    folder = Path(cfg.neuronpedia) / names.model_id / names.source_id
    for name, row in metadata_rows(cfg, names, header).items():
        L.write_rows(folder / name, [row], compressed=False)
    batches = -(-index.d_sae // L.BATCH)
    activations = 0
    for n in tqdm(range(batches), desc="export", unit="batch", dynamic_ncols=True):
        activations += write_batch(folder, n, index, cfg, names)
    for kind in (L.FEATURES, L.ACTIVATIONS):
        L.remove_batches_from(folder, kind, batches)
    explanations = write_explanations(folder, index, names)
    log.info("exported %s to %s", index.path, folder)
    return ExportResult(
        folder, names.model_id, names.source_id, index.d_sae, activations, explanations, batches
    )


__all__ = ["ExportResult", "export_neuronpedia", "index_of_run", "neuronpedia_id"]
