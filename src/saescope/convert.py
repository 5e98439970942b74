"""`saescope convert`: import and export SAEs between formats (the formats are `saescope.sae.formats`).

The model and hookpoint come from the source where it records them, else from `--model` and
`--hookpoint`. Refuses to write over the source or over an SAE of another format in `--out`.
This module knows nothing about the formats' layouts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from .config import ConvertConfig
from .errors import ConfigError, SaescopeError
from .sae.base import SAEConfig
from .sae.formats import FORMATS_IN, FORMATS_OUT, READERS, WRITERS, detect_format

log = logging.getLogger(__name__)


class ConvertResult(NamedTuple):
    """A converted SAE."""

    out: Path
    """The folder written."""
    from_format: str
    """The source's format."""
    to_format: str
    """The format written."""

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "from": self.from_format, "to": self.to_format}

    def render(self) -> str:
        return f"wrote {self.to_format} SAE to {self.out}"


def convert(cfg: ConvertConfig) -> ConvertResult:
    """Read the SAE at `cfg.sae_dir` in `cfg.from_format` and write it to `cfg.out` in `cfg.to_format`.

    The model and hookpoint come from the source where it records them, else from `cfg.model` and
    `cfg.hookpoint`. Refuses to write over the source or over an SAE of another format in `out`.
    """
    if cfg.from_format not in FORMATS_IN:
        raise ConfigError(f"unknown source format {cfg.from_format!r}; choose from {', '.join(FORMATS_IN)}")
    if cfg.to_format not in FORMATS_OUT:
        raise ConfigError(f"unknown target format {cfg.to_format!r}; choose from {', '.join(FORMATS_OUT)}")
    source, out = Path(cfg.sae_dir), Path(cfg.out)
    if not source.exists():
        raise SaescopeError(f"SAE not found: {source}")
    source_folder = source if source.is_dir() else source.parent
    if out.exists() and out.resolve() == source_folder.resolve() and cfg.from_format != "gemmascope":
        raise ConfigError(f"--out {out} is the source folder; write the converted SAE somewhere else")
    if out.is_dir():
        present = detect_format(out)
        if present not in (None, "gemmascope", cfg.to_format):
            held = "an SAE of unknown format" if present == "unknown" else f"a {present} SAE"
            raise ConfigError(f"{out} already holds {held}; choose another --out to keep it")

    sae = READERS[cfg.from_format](source)
    if cfg.from_format == "sparsify" and cfg.hookpoint:
        # sparsify records its hookpoint only as the folder's name, which --hookpoint overrides.
        sae.cfg = sae.cfg.with_updates(hookpoint=cfg.hookpoint, hookpoint_alias=cfg.hookpoint)
    sae.cfg = _fill_identity(sae.cfg, cfg.model, cfg.hookpoint)
    WRITERS[cfg.to_format](sae, out)
    log.info("converted %s (%s) to %s (%s)", source, cfg.from_format, out, cfg.to_format)
    return ConvertResult(out, cfg.from_format, cfg.to_format)


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
