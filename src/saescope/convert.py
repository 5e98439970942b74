"""`saescope convert`: import and export SAEs between formats (the formats are `saescope.sae.formats`).

The source is a folder (its format given by `--from`, or `auto`: the one its files show) or a
published SAE's name (`hf:…`, `saelens:…`, read from the Hugging Face cache in the format its
files show: `saescope.sae.source`). The model and hookpoint come from the source where it records
them, else from `--model` and `--hookpoint`. Refuses to write over the source or over an SAE of
another format in `--out`.

Transcoders: native and sparsify hold a TopK transcoder exactly; SAELens (one transcoder) and
circuit-tracer (`--to circuit-tracer`, a whole set: `runs/NAME/transcoders`) read only JumpReLU, so
a transcoder is written with thresholds calibrated on `--calibration-tokens` tokens of its
inputs — the transcoder's model run on its own corpus from where training stopped reading — and
the agreement of the JumpReLU copy with the TopK original on held-out rows is printed for every
layer (`saescope.sae.formats.jumprelu_thresholds`).
This module knows nothing about the formats' layouts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .bound import heldout_corpus
from .config import ConvertConfig, ModelSettings
from .config.convert import AUTO, CIRCUIT_TRACER
from .data import iter_model_inputs
from .errors import ConfigError, SaescopeError
from .hookpoints import resolve_hookpoints
from .models import load_model
from .positions import iter_positions
from .sae.base import SAEConfig, SparseAutoencoder
from .sae.formats import FORMATS_IN, FORMATS_OUT, READERS, WRITERS, detect_format, read_sae_folder
from .sae.formats.circuit_tracer import save_circuit_tracer
from .sae.formats.saelens_transcoder import save_saelens_transcoder
from .sae.hub import is_sae_name
from .sae.source import read_published
from .sae.transcoder import Transcoder, load_transcoder_set

log = logging.getLogger(__name__)


class ConvertResult(NamedTuple):
    """A converted SAE."""

    out: Path
    """The folder written."""
    from_format: str
    """The source's format."""
    to_format: str
    """The format written."""
    agreements: tuple[str, ...] = ()
    """For a TopK transcoder written as JumpReLU: per layer, how the copy agrees with the original
    on held-out rows (empty when the conversion is exact)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "from": self.from_format,
            "to": self.to_format,
            "approximation": list(self.agreements),
        }

    def render(self) -> str:
        what = "transcoder set" if self.to_format == CIRCUIT_TRACER else "SAE"
        return "\n".join([f"wrote {self.to_format} {what} to {self.out}", *self.agreements])


def convert(cfg: ConvertConfig) -> ConvertResult:
    """Read the SAE at `cfg.sae_dir` in `cfg.from_format` and write it to `cfg.out` in `cfg.to_format`.

    The model and hookpoint come from the source where it records them, else from `cfg.model` and
    `cfg.hookpoint`. Refuses to write over the source or over an SAE of another format in `out`.
    """
    if cfg.from_format not in (AUTO, *FORMATS_IN):
        raise ConfigError(f"unknown source format {cfg.from_format!r}; choose from {', '.join(FORMATS_IN)}")
    if cfg.to_format not in FORMATS_OUT:
        raise ConfigError(f"unknown target format {cfg.to_format!r}; choose from {', '.join(FORMATS_OUT)}")
    out = Path(cfg.out)
    check_source(cfg)
    if cfg.to_format == CIRCUIT_TRACER:
        return export_circuit_tracer(cfg)
    if out.is_dir():
        present = detect_format(out)
        if present not in (None, "gemmascope", "llamascope", cfg.to_format):
            held = "an SAE of unknown format" if present == "unknown" else f"a {present} SAE"
            raise ConfigError(f"{out} already holds {held}; choose another --out to keep it")
    sae, from_format = read_source(cfg)
    if from_format == "sparsify" and cfg.hookpoint:
        # sparsify records its hookpoint only as the folder's name, which --hookpoint overrides.
        sae.cfg = sae.cfg.with_updates(hookpoint=cfg.hookpoint, hookpoint_alias=cfg.hookpoint)
    sae.cfg = _fill_identity(sae.cfg, cfg.model, cfg.hookpoint)
    agreements: tuple[str, ...] = ()
    if isinstance(sae, Transcoder) and cfg.to_format == "saelens":
        sample = calibration_samples([sae], cfg.calibration_tokens)[sae.layer]
        agreements = (f"layer {sae.layer}: {save_saelens_transcoder(sae, out, sample).describe()}",)
    else:
        WRITERS[cfg.to_format](sae, out)
    log.info("converted %s (%s) to %s (%s)", cfg.sae_dir, from_format, out, cfg.to_format)
    return ConvertResult(out, from_format, cfg.to_format, agreements)


def export_circuit_tracer(cfg: ConvertConfig) -> ConvertResult:
    """Write the transcoder set at `cfg.sae_dir` as circuit-tracer's (see the module docstring)."""
    tset = load_transcoder_set(cfg.sae_dir)
    samples = calibration_samples(list(tset.transcoders), cfg.calibration_tokens)
    export = save_circuit_tracer(tset, cfg.out, samples)
    lines = tuple(f"layer {layer}: {a.describe()}" for layer, a in export.agreements.items())
    return ConvertResult(Path(cfg.out), "native", CIRCUIT_TRACER, lines)


@torch.inference_mode()
def calibration_samples(transcoders: list[Transcoder], tokens: int) -> dict[int, Tensor]:
    """[tokens, d_in] inputs of each transcoder (by layer), from one model run over the first
    one's corpus from where its training stopped reading (`bound.heldout_corpus`)."""
    first = transcoders[0]
    if not first.cfg.model:
        raise SaescopeError("the transcoder does not record its model; its inputs cannot be sampled")
    loaded = load_model(ModelSettings(model=first.cfg.model, revision=first.cfg.revision))
    specs = [tc.cfg.hookpoint_alias or tc.cfg.hookpoint for tc in transcoders]
    try:
        hookpoints = resolve_hookpoints(loaded.model, specs)
    except SaescopeError as e:
        raise SaescopeError(f"the transcoders' hookpoints are not in {loaded.name}: {e}") from None
    corpus, start = heldout_corpus(first)
    rows: dict[int, list[Tensor]] = {tc.layer: [] for tc in transcoders}
    seen = 0
    for pb in iter_positions(loaded, hookpoints, iter_model_inputs(corpus, loaded.tokenizer, start), 8):
        for tc, hp in zip(transcoders, hookpoints):
            rows[tc.layer].append(pb.activations[hp.name].float().cpu())
        seen += len(rows[first.layer][-1])
        if seen >= tokens:
            break
    if seen < tokens:
        log.warning("the corpus gave %d calibration tokens, fewer than %d", seen, tokens)
    return {layer: torch.cat(parts)[:tokens] for layer, parts in rows.items()}


def check_source(cfg: ConvertConfig) -> None:
    """A source folder that exists and is not `--out` (a name's files are in the Hugging Face cache)."""
    if is_sae_name(cfg.sae_dir):
        return
    source, out = Path(cfg.sae_dir), Path(cfg.out)
    if not source.exists():
        raise SaescopeError(f"SAE not found: {source}")
    source_folder = source if source.is_dir() else source.parent
    beside_npz = cfg.from_format == "gemmascope" or detect_format(source_folder) == "gemmascope"
    if out.exists() and out.resolve() == source_folder.resolve() and not beside_npz:
        raise ConfigError(f"--out {out} is the source folder; write the converted SAE somewhere else")


def read_source(cfg: ConvertConfig) -> tuple[SparseAutoencoder, str]:
    """The SAE to convert and its format."""
    if is_sae_name(cfg.sae_dir):
        sae, _, fmt = read_published(str(cfg.sae_dir))
        return sae, fmt
    source = Path(cfg.sae_dir)
    if cfg.from_format != AUTO:
        return READERS[cfg.from_format](source), cfg.from_format
    if source.is_file():  # a Gemma Scope params.npz given as a file
        return READERS["gemmascope"](source), "gemmascope"
    return read_sae_folder(source)


def _fill_identity(sae_cfg: SAEConfig, model: str | None, hookpoint: str | None) -> SAEConfig:
    changes: dict[str, Any] = {}
    if sae_cfg.model:
        if model and model != sae_cfg.model:
            log.warning("the source records model %r; keeping it (not --model %r)", sae_cfg.model, model)
    elif model:
        changes["model"] = model
    else:
        log.warning("the source does not record its model; pass --model to record it")
    if sae_cfg.hookpoint:
        if hookpoint and hookpoint != sae_cfg.hookpoint:
            log.warning(
                "the source records hookpoint %r; keeping it (not --hookpoint %r)",
                sae_cfg.hookpoint,
                hookpoint,
            )
    elif hookpoint:
        changes["hookpoint"] = changes["hookpoint_alias"] = hookpoint
    else:
        log.warning("the source does not record its hookpoint; pass --hookpoint to record it")
    return sae_cfg.with_updates(**changes)
