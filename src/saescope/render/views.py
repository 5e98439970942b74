"""What a feature page shows, as plain values: the data the rendering functions take.

A latent index answers queries in JSON shapes (its contract, e.g. an example is `{"doc_id",
"position", "activation", "tokens": [str], "activations": [float]}`); the `from_contract`
constructors read those shapes, so the static dashboards and the web server hand the renderers the
same values whichever way they gathered them.

This module knows nothing about HTML, the latent index's files or models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class TokenExample(NamedTuple):
    """A window of tokens around one place in the corpus, with one latent's activation on each."""

    doc_id: int
    """The document (model input) the window comes from (-1 when unknown)."""
    position: int
    """Position in the document of the example's own token (-1 when unknown)."""
    activation: float
    """The latent's activation on the example's own token."""
    tokens: tuple[str, ...]
    """Decoded tokens of the window, in order."""
    activations: tuple[float, ...]
    """The latent's activation on each token (0 where it does not fire)."""
    focus: int
    """Index in `tokens` of the example's own token (-1 when the window has none, e.g. a
    non-activating example)."""

    @classmethod
    def from_contract(cls, d: Mapping[str, Any]) -> TokenExample:
        """An example from the index's JSON shape. The window's own token is `focus` when the shape
        gives it, else the first token carrying the example's activation (a top example's window
        peaks there)."""
        tokens = tuple(str(t) for t in d["tokens"])
        acts = tuple(float(a) for a in d["activations"])
        if len(tokens) != len(acts):
            raise ValueError(f"an example has {len(tokens)} tokens but {len(acts)} activations")
        activation = float(d.get("activation", max(acts, default=0.0)))
        focus = d.get("focus")
        if focus is None:
            focus = _first_match(acts, activation)
        return cls(int(d.get("doc_id", -1)), int(d.get("position", -1)), activation, tokens, acts, int(focus))


def _first_match(acts: Sequence[float], activation: float) -> int:
    """The first index whose activation is `activation` (relative tolerance for float16 storage),
    or -1 when the window does not fire or none matches."""
    if activation <= 0:
        return -1
    for i, a in enumerate(acts):
        if abs(a - activation) <= 1e-3 * abs(activation):
            return i
    return -1


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
    examples: tuple[TokenExample, ...]
    """The examples drawn from it."""


class LatentView(NamedTuple):
    """Everything one latent's page shows."""

    latent: int
    """The latent id."""
    d_sae: int
    """Latents of its SAE (for previous/next links)."""
    stats: LatentStatsView | None
    """Its statistics (None when the index has none)."""
    top: tuple[TokenExample, ...]
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
    "TokenExample",
]
