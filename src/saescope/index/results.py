"""What queries on a latent index return: examples and relations, as NamedTuples with `to_json`.

`Example` is the contract of `saescope query --latent I --json` (and what auto-interpretation
reads); the others are plain records of one relation each. This module knows nothing about how
they are computed.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Example(NamedTuple):
    """A context window around one place in the corpus, with one latent's activation per token (the
    `saescope query --latent --json` contract)."""

    doc_id: int
    """The model input it comes from."""
    position: int
    """Position of its focus token in that input (the activating token, or a unit's best one)."""
    activation: float
    """The latent's activation at `position` (for a sentence or document: its score)."""
    tokens: list[str]
    """The window's tokens, each decoded on its own (the focus token included)."""
    activations: list[float]
    """The latent's activation on each of them (0 where it does not fire)."""

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


class QuantileExamples(NamedTuple):
    """Examples drawn from one activation quantile of a latent (equal-count bins, as delphi)."""

    quantile: int
    """0 for the lowest activations, `quantiles - 1` for the highest."""
    low: float
    """Smallest activation in the bin."""
    high: float
    """Largest activation in the bin."""
    examples: list[Example]
    """Drawn at random from the bin, largest activation first."""

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "examples": [e.to_json() for e in self.examples]}


class Cooccurrence(NamedTuple):
    """A latent firing on the same tokens as another."""

    latent: int
    """The partner."""
    shared: int
    """Tokens where both fire."""
    jaccard: float
    """`shared` / tokens where either fires."""


class Neighbour(NamedTuple):
    """A latent with a similar decoder direction."""

    latent: int
    cosine: float


class TokenEffect(NamedTuple):
    """A token whose logit a latent's decoder direction moves (see `decoder`)."""

    token_id: int
    token: str
    effect: float


class LogitEffects(NamedTuple):
    """The tokens a latent promotes and suppresses most."""

    top: list[TokenEffect]
    bottom: list[TokenEffect]


class ProxyScore(NamedTuple):
    """How well one latent detects a proxy (Towards Monosemanticity's proxy analysis)."""

    latent: int
    precision: float
    """Of the tokens where the latent fires, the fraction matching the proxy."""
    recall: float
    """Of the tokens matching the proxy, the fraction where the latent fires."""
    auroc: float
    """Area under the ROC curve of the activation (0 where inactive) as a detector of the proxy."""
    correlation: float
    """Pearson correlation between the activation (0 where inactive) and the proxy (0/1), over all
    indexed tokens."""
    fires: int
    """Tokens where the latent fires."""


class ProxyHistogram(NamedTuple):
    """A latent's activations where it fires, split by whether the token matches a proxy."""

    edges: list[float]
    """Bin edges (bins + 1 of them, from 0 to the latent's maximum)."""
    matching: list[int]
    """Firings on matching tokens per bin."""
    other: list[int]
    """Firings on other tokens per bin."""
    inactive_matching: int
    """Matching tokens where the latent does not fire."""


__all__ = [
    "Cooccurrence",
    "Example",
    "LogitEffects",
    "Neighbour",
    "ProxyHistogram",
    "ProxyScore",
    "QuantileExamples",
    "TokenEffect",
]
