"""`saescope dashboard` settings.

This module knows nothing about how the pages are gathered or rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import require


@dataclass(frozen=True)
class PageSettings:
    """How much a latent page shows (the static dashboard's pages and the web server's alike)."""

    top: int = 20
    """Top examples per latent page (their tokens are also the latent's top tokens in the list)."""

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

    def __post_init__(self) -> None:
        for name in ("top", "quantiles", "before", "after", "related", "logits"):
            value = getattr(self, name)
            require(0 <= value <= 1000, f"--{name.replace('_', '-')} must be in [0, 1000], got {value}")
        require(1 <= self.per_quantile <= 100, f"--per-quantile must be in [1, 100], got {self.per_quantile}")


@dataclass(frozen=True)
class DashboardConfig(PageSettings):
    """`saescope dashboard`: one static HTML page per latent of a latent index, and an index page."""

    index: Path = field(default=Path(), metadata={"positional": True, "metavar": "INDEX", "required": True})
    """The latent index folder (e.g. runs/demo/index), or a published SAE's name (`hf:…`,
    `saelens:…`): the index `saescope index NAME` made."""

    out: Path | None = None
    """Folder to write the pages to. Default: `dashboard` beside the index (runs/NAME/dashboard)."""

    latents: tuple[int, ...] = ()
    """Only these latents get a page. Default: every latent of the index."""

    workers: int = 0
    """Processes writing pages (each opens the index once). Default: one per CPU core."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(str(self.index) not in ("", "."), "give the latent index folder (e.g. runs/demo/index)")
        require(all(i >= 0 for i in self.latents), "--latents must be latent ids (>= 0)")
        require(0 <= self.workers <= 256, f"--workers must be in [0, 256], got {self.workers}")

    @property
    def page(self) -> PageSettings:
        """Only the page settings (what each page-writing process is handed)."""
        return PageSettings(**{f.name: getattr(self, f.name) for f in fields(PageSettings)})
