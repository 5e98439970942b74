"""`saescope convert` settings.

This module knows nothing about the formats themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _formats_in() -> list[str]:
    from ..sae.formats import FORMATS_IN

    return list(FORMATS_IN)


def _formats_out() -> list[str]:
    from ..sae.formats import FORMATS_OUT

    return list(FORMATS_OUT)


@dataclass(frozen=True)
class ConvertConfig:
    """`saescope convert`: import and export SAEs between formats."""

    sae_dir: Path = field(default=Path(), metadata={"positional": True, "metavar": "SAE_DIR"})
    """Folder (or `params.npz` for Gemma Scope) of the SAE to convert."""

    from_format: str = field(default="native", metadata={"flags": ("--from",), "choices": _formats_in})
    """Format of the source."""

    to_format: str = field(default="native", metadata={"flags": ("--to",), "choices": _formats_out})
    """Format to write."""

    out: Path = Path()
    """Output folder."""

    model: str | None = None
    """Model the SAE belongs to, recorded in the output when the source does not say."""

    hookpoint: str | None = None
    """Hookpoint the SAE belongs to, recorded when the source does not say."""
