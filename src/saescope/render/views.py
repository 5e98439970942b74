"""What a feature page shows, as plain values: the data the rendering functions take.

Examples are `saescope.example.Example` windows as the latent index cuts them (their focus token
marked); `gather` builds these views from an index, for the static dashboards and the web server
alike.

This module knows nothing about HTML, the latent index's files or models.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..example import Example


class Histogram(NamedTuple):
    """Counts in equal-width bins."""

    edges: tuple[float, ...]
    """Bin edges, one more than bins."""
    counts: tuple[int, ...]
    """Values in each bin."""


class LatentStatsView(NamedTuple):
    """A latent's firing statistics on the indexed text."""

    fires: int
    """Tokens where it fires."""
    frequency: float
    """Fraction of indexed tokens where it fires."""
    max: float
    """Its largest activation."""
    mean: float
    """Its mean activation where it fires."""
    quantiles: tuple[tuple[str, float], ...]
    """(name, value) of activation quantiles where it fires, e.g. ("q50", 1.2)."""
    histogram: Histogram | None
    """Its activation density over (0, max] (None when it never fires)."""
    dead: bool
    """It never fires on the indexed text."""
    dense: bool
    """It fires on more tokens than the index calls dense."""
    tokens: int = 0
    """The indexed tokens these counts are of (0: not known)."""


class Related(NamedTuple):
    """Another latent and how it relates to this one."""

    latent: int
    """Its id."""
    value: float
    """Decoder cosine (neighbours) or co-occurrence strength (co-occurring latents)."""
    explanation: str
    """Its explanation ("" when it has none)."""


class LogitEffect(NamedTuple):
    """A token whose logit the latent's decoder direction raises or lowers."""

    token: str
    """The token, decoded."""
    value: float
    """Decoder direction · unembedding row."""


class Scored(NamedTuple):
    """One score of an explanation, with its 95% interval and the chance baseline."""

    name: str
    """`scorer metric`, e.g. `detection accuracy`."""
    value: float
    """The score."""
    low: float | None
    """Lower end of its 95% interval (None when not measured)."""
    high: float | None
    """Upper end of its 95% interval (None when not measured)."""
    baseline: float | None
    """The same metric for a chance baseline (None without one)."""


class ExplanationView(NamedTuple):
    """What an interpreter says a latent responds to."""

    text: str
    """The explanation."""
    explainer: str
    """Which explainer wrote it (`llm`, `stats`, …)."""
    model: str
    """The language model that wrote it ("" for none)."""
    confidence: float | None
    """The explainer's own confidence, when it gave one."""
    scores: tuple[Scored, ...]
    """Its scores, the headline score (the one lists show and sort by) first."""
    few_examples: bool = False
    """The latent fired on few tokens: the explanation rests on little evidence."""

    @property
    def headline(self) -> Scored | None:
        """The score shown in lists (the first one)."""
        return self.scores[0] if self.scores else None


class QuantileGroup(NamedTuple):
    """Examples drawn from one activation quantile of a latent."""

    label: str
    """E.g. `quantile 3 of 5 (0.81–1.20)`."""
    examples: tuple[Example, ...]
    """The examples drawn from it."""


class LatentView(NamedTuple):
    """Everything one latent's page shows."""

    latent: int
    """The latent id."""
    d_sae: int
    """Latents of its SAE (for previous/next links)."""
    stats: LatentStatsView | None
    """Its statistics (None when the index has none)."""
    top: tuple[Example, ...]
    """Its top-activating examples, largest first."""
    quantiles: tuple[QuantileGroup, ...]
    """Examples across its activation range, lowest quantile first."""
    neighbours: tuple[Related, ...]
    """Latents with the most similar decoder directions."""
    cooccurring: tuple[Related, ...]
    """Latents firing most often on the same tokens."""
    logits_up: tuple[LogitEffect, ...]
    """Tokens whose logits it raises most."""
    logits_down: tuple[LogitEffect, ...]
    """Tokens whose logits it lowers most."""
    explanation: ExplanationView | None
    """Its explanation, once the interpretation stage wrote one."""


class LatentRow(NamedTuple):
    """One latent in a list of latents (sortable, searchable)."""

    latent: int
    """The latent id."""
    frequency: float
    """Fraction of indexed tokens where it fires."""
    max: float
    """Its largest activation."""
    explanation: str
    """Its explanation ("" when none)."""
    score: float | None
    """Its explanation's headline score (None when none)."""
    top_tokens: tuple[str, ...]
    """The tokens of its top examples (searchable), most frequent first."""

    def to_json(self) -> dict[str, Any]:
        """The row as the list's embedded JSON (`l`, `f`, `m`, `e`, `s`, `t`: short keys keep the
        index page of a 100k-latent SAE small)."""
        return {
            "l": self.latent,
            "f": self.frequency,
            "m": self.max,
            "e": self.explanation,
            "s": self.score,
            "t": " ".join(self.top_tokens),
        }


__all__ = [
    "ExplanationView",
    "Histogram",
    "LatentRow",
    "LatentStatsView",
    "LatentView",
    "LogitEffect",
    "QuantileGroup",
    "Related",
    "Scored",
]
