"""`saescope explanations`: the stored explanations of an index, best scored first, or searched.

Without `--search`, each latent's best explanation (`best.best_of`) is listed by its headline
score, highest first (latents without a score after those with one, by latent). With `--search`,
the latents whose explanations match the words best (`search`), most relevant first.

This module knows nothing about how explanations are made.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from ..config.explanations import ExplanationsConfig
from ..index.format import read_header
from .best import Interpretation
from .search import ExplanationSearch, SearchHit
from .tables import best_by_latent, read_interpretations


class Listed(NamedTuple):
    """One latent in the list."""

    latent: int
    """The latent's index."""
    explanation: str
    """Its explanation."""
    explainer: str
    """Which explainer wrote it."""
    model: str
    """The language model that wrote it ("" for none)."""
    headline: float | None
    """Its headline score (`best.HEADLINES`), when it has one."""
    relevance: float | None
    """BM25 relevance to the search (None when listing without one)."""
    headline_name: str = ""
    """Which score `headline` is (`scorer metric`, e.g. `statistics auroc`; "" when none)."""

    def line(self) -> str:
        score = "not scored" if self.headline is None else f"{self.headline:.3f} {self.headline_name}"
        by = self.explainer + (f"/{self.model}" if self.model else "")
        return f"{self.latent:>7}  {score:<22}  {self.explanation}  [{by}]"

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def _listed(i: Interpretation) -> Listed:
    top = i.headline
    e = i.explanation
    value, name = (None, "") if top is None else (top.value, f"{top.scorer} {top.metric}")
    return Listed(e.latent, e.text, e.explainer, e.model, value, None, name)


def _found(hit: SearchHit) -> Listed:
    return Listed(
        hit.latent, hit.explanation, hit.explainer, hit.model, hit.headline, hit.relevance, hit.headline_name
    )


class ExplanationList(NamedTuple):
    """The result of `saescope explanations`."""

    index_dir: Path
    """The index folder."""
    search: str | None
    """The words searched for (None: best scored first)."""
    explained: int
    """Latents with a usable explanation in the index."""
    rows: tuple[Listed, ...]
    """The latents listed, in order."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index_dir),
            "search": self.search,
            "explained": self.explained,
            "rows": [r.to_json() for r in self.rows],
        }

    def render(self) -> str:
        what = f"matching {self.search!r}" if self.search is not None else "best scored first"
        head = f"{self.index_dir}: {self.explained} latents explained; {len(self.rows)} {what}"
        columns = f"{'latent':>7}  {'headline score':<22}  explanation  [explainer/model]"
        return "\n".join([head, columns, *(r.line() for r in self.rows)])


def _by_score(i: Interpretation) -> tuple[float, int]:
    top = i.headline
    return (-top.value if top is not None and math.isfinite(top.value) else math.inf, i.latent)


def explanations(cfg: ExplanationsConfig) -> ExplanationList:
    """List or search the explanations stored in `cfg.index`."""
    read_header(cfg.index)
    stored = read_interpretations(cfg.index)
    best = best_by_latent(stored)
    if cfg.search is not None:
        rows = tuple(_found(h) for h in ExplanationSearch(stored).search(cfg.search, cfg.top))
    else:
        rows = tuple(_listed(i) for i in sorted(best.values(), key=_by_score)[: cfg.top])
    return ExplanationList(cfg.index, cfg.search, len(best), rows)


__all__ = ["ExplanationList", "Listed", "explanations"]
