"""`saescope convert` settings, and the names of the formats it reads and writes.

`saescope.sae.formats` implements exactly these formats (a test checks it), so `--help` lists them
without importing the formats' code.
This module knows nothing about the formats themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require

FORMATS_IN = ("native", "saelens", "sparsify", "gemmascope", "llamascope")
"""Formats that can be read (`--from`)."""
AUTO = "auto"
"""`--from auto`: the format the source's files show (a published SAE's name is always read so)."""
FORMATS_OUT = ("native", "saelens", "sparsify", "circuit-tracer")
"""Formats that can be written (`--to`)."""
CIRCUIT_TRACER = "circuit-tracer"
"""`--to circuit-tracer`: a whole transcoder set (one folder per layer from 0) in circuit-tracer's layout."""


def _formats_in() -> list[str]:
    return [AUTO, *FORMATS_IN]


def _formats_out() -> list[str]:
    return list(FORMATS_OUT)


@dataclass(frozen=True)
class ConvertConfig:
    """`saescope convert`: import and export SAEs between formats."""

    sae_dir: Path = field(
        default=Path(), metadata={"positional": True, "metavar": "SAE_DIR", "required": True}
    )
    """Folder (or `params.npz` for Gemma Scope) of the SAE to convert, or a published SAE's name
    (`hf:OWNER/REPO[/PATH][@REVISION]`, `saelens:RELEASE/SAE_ID`)."""

    from_format: str = field(default=AUTO, metadata={"flags": ("--from",), "choices": _formats_in})
    """Format of the source; `auto`: the one its files show."""

    to_format: str = field(default="native", metadata={"flags": ("--to",), "choices": _formats_out})
    """Format to write."""

    out: Path = field(default=Path(), metadata={"required": True})
    """Output folder."""

    model: str | None = None
    """Model the SAE belongs to, recorded in the output when the source does not say."""

    hookpoint: str | None = None
    """Hookpoint the SAE belongs to, recorded when the source does not say."""

    calibration_tokens: int = 4096
    """A TopK transcoder written as JumpReLU (`--to saelens`, `--to circuit-tracer`): tokens of its
    inputs (its model run on its own corpus, after what training read) its thresholds are calibrated
    on; a quarter of them is held out to measure the copy's agreement."""

    def __post_init__(self) -> None:
        require(str(self.sae_dir) not in ("", "."), "give the SAE to convert (SAE_DIR)")
        require(
            self.from_format in _formats_in(),
            f"unknown source format {self.from_format!r} (--from); choose from {', '.join(_formats_in())}",
        )
        require(
            self.to_format in FORMATS_OUT,
            f"unknown target format {self.to_format!r} (--to); choose from {', '.join(FORMATS_OUT)}",
        )
        require(str(self.out) not in ("", "."), "give --out, the folder to write the converted SAE to")
        require(
            self.calibration_tokens >= 100,
            f"--calibration-tokens must be at least 100, got {self.calibration_tokens}",
        )
