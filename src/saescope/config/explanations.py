"""`saescope explanations` settings.

This module knows nothing about how explanations are stored or searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class ExplanationsConfig:
    """`saescope explanations`: the explanations stored in a latent index, best scored first, or
    those matching a search."""

    index: Path = field(default=Path(), metadata={"positional": True, "metavar": "INDEX", "required": True})
    """The latent index folder (e.g. runs/demo/index), or a published SAE's name (`hf:…`,
    `saelens:…`): the index `saescope index NAME` made."""

    search: str | None = None
    """Words to look for in the explanations (full text, ranked by BM25, offline); each latent is
    listed once, with its best-matching explanation."""

    top: int = 20
    """Latents listed."""

    def __post_init__(self) -> None:
        require(str(self.index) not in ("", "."), "give the index folder (e.g. runs/demo/index)")
        require(self.top >= 1, f"--top must be at least 1, got {self.top}")
        require(self.search is None or self.search.strip() != "", "the search is empty")
