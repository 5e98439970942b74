"""`saescope dashboard` settings.

This module knows nothing about how the pages are gathered or rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class DashboardConfig:
    """`saescope dashboard`: one static HTML page per latent of a latent index, and an index page."""

    index: Path = field(default=Path(), metadata={"positional": True, "metavar": "INDEX"})
    """The latent index folder (e.g. runs/demo/index)."""

    out: Path | None = None
    """Folder to write the pages to. Default: `dashboard` beside the index (runs/NAME/dashboard)."""

    latents: tuple[int, ...] = ()
    """Only these latents get a page. Default: every latent of the index."""

    top: int = 20
    """Top examples per latent page."""

    quantiles: int = 5
    """Activation quantiles shown below the top examples (equal counts of firing tokens)."""

    per_quantile: int = 3
    """Examples shown per quantile."""

    before: int = 12
    """Tokens of context before an example's token."""

    after: int = 4
    """Tokens of context after an example's token."""

    related: int = 10
    """Decoder-cosine neighbours and co-occurring latents listed per page."""

    logits: int = 10
    """Tokens listed whose logits the latent raises most, and lowers most."""

    workers: int = 0
    """Processes writing pages (each opens the index once). Default: one per CPU core."""

    def __post_init__(self) -> None:
        require(str(self.index) not in ("", "."), "give the latent index folder (e.g. runs/demo/index)")
        for name in ("top", "quantiles", "before", "after", "related", "logits"):
            value = getattr(self, name)
            require(0 <= value <= 1000, f"--{name.replace('_', '-')} must be in [0, 1000], got {value}")
        require(1 <= self.per_quantile <= 100, f"--per-quantile must be in [1, 100], got {self.per_quantile}")
        require(all(i >= 0 for i in self.latents), "--latents must be latent ids (>= 0)")
        require(0 <= self.workers <= 256, f"--workers must be in [0, 256], got {self.workers}")
