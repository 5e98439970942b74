"""What queries on a latent index return besides example windows (`saescope.example.Example`):
examples grouped by quantile, and plain records of one relation each.

This module knows nothing about how they are computed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..example import Example


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
    """A latent firing on the same tokens as another (the ratios are defined in `cooccurrence`)."""

    latent: int
    """The partner."""
    shared: int
    """Indexed tokens where both fire."""
    jaccard: float
    """`shared` / indexed tokens where either fires."""
    lift: float
    """How many times more often the two fire together than if they were independent."""
    dense: bool
    """The partner is dense (fires on more than the build's `dense_frequency` of tokens): it
    co-occurs with almost everything."""


class Neighbour(NamedTuple):
    """A latent with a similar decoder direction."""

    latent: int
    cosine: float


LOGIT_UNIT = "logit per unit of a residual stream equal to the decoder direction, through the final norm"
"""What a logit effect's number is (`saescope.readout`): comparable within a latent."""
LOGIT_SIGN = "positive: the latent promotes the token; negative: it suppresses it"
"""What a logit effect's sign says."""


class TokenEffect(NamedTuple):
    """A token whose logit a latent's decoder direction moves (`LOGIT_UNIT`, `LOGIT_SIGN`)."""

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


class ProxyRanking(NamedTuple):
    """The latents that best detect a proxy, and which tokens that was measured on."""

    name: str
    """The proxy as the user wrote it."""
    by: str
    """The metric they are ranked by."""
    min_firings: int
    """Ranked by precision, latents firing on fewer indexed tokens are left out."""
    tokens: int
    """Indexed tokens every score is computed over."""
    matching: int
    """Of those, the tokens matching the proxy."""
    latents: list[ProxyScore]
    """The best first (ties: lower latent first)."""

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "latents": [s._asdict() for s in self.latents]}


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
    matching_tokens: int
    """Indexed tokens matching the proxy."""
    tokens: int
    """Indexed tokens."""


__all__ = [
    "LOGIT_SIGN",
    "LOGIT_UNIT",
    "Cooccurrence",
    "LogitEffects",
    "Neighbour",
    "ProxyHistogram",
    "ProxyRanking",
    "ProxyScore",
    "QuantileExamples",
    "TokenEffect",
]
