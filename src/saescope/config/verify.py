"""`saescope verify` settings.

This module knows nothing about how a store is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class VerifyConfig:
    """`saescope verify`: check every file of an activation store against its recorded SHA-256."""

    store: Path = field(default=Path(), metadata={"positional": True, "metavar": "STORE", "required": True})
    """The activation store folder (the one holding manifest.json)."""

    def __post_init__(self) -> None:
        require(str(self.store) not in ("", "."), "give the activation store folder (STORE)")
