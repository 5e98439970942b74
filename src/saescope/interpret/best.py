"""Which score a latent is judged by, and which of its explanations is shown.

A latent may hold several explanations (one per explainer, model and prompt version), each with
several scores. Dashboards and the server show one explanation per latent and sort by one
number, its *headline* score: the first of `HEADLINES` that was measured — detection accuracy
(on a balanced mix of firing and non-firing excerpts, so chance is 0.5), fuzzing accuracy,
simulation correlation, statistics AUROC. The *best* explanation of a latent is its usable one
with the highest value of the first headline any of them has, then the highest confidence, then
the newest.

This module knows nothing about files, language models or how scores are computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .explainers import Explanation
from .scorers import Score

HEADLINES: tuple[tuple[str, str], ...] = (
    ("detection", "accuracy"),
    ("fuzzing", "accuracy"),
    ("simulation", "pearson"),
    ("statistics", "auroc"),
)
"""(scorer, metric) a latent is judged by, in order of preference."""


class Interpretation(NamedTuple):
    """One stored explanation of a latent with its scores."""

    explanation: Explanation
    """What the explainer said (`ok=False` with `error` when it failed)."""
    scores: tuple[Score, ...]
    """Every score of it, by every scorer and metric."""
    created: datetime
    """When it was written (UTC)."""

    @property
    def latent(self) -> int:
        return self.explanation.latent

    @property
    def headline(self) -> Score | None:
        """Its headline score: the first of `HEADLINES` it has with a value (None when none)."""
        return headline(self.scores)

    def to_json(self) -> dict[str, Any]:
        """JSON values: the explanation (without the raw answer), its scores and headline."""
        top = self.headline
        explanation = {k: v for k, v in self.explanation.to_dict().items() if k != "raw"}
        return {
            **explanation,
            "created": self.created.isoformat(),
            "headline": None if top is None else f"{top.scorer}/{top.metric}",
            "headline_value": None if top is None else top.value,
            "scores": [s.to_dict() for s in self.scores],
        }


def finite(value: float | None) -> bool:
    """Whether `value` is a number (not None, NaN or infinite)."""
    return value is not None and math.isfinite(value)


def score_for(scores: Sequence[Score], scorer: str, metric: str) -> Score | None:
    """The score of `scorer` and `metric` with a value, if any."""
    return next((s for s in scores if s.scorer == scorer and s.metric == metric and finite(s.value)), None)


def headline(scores: Sequence[Score]) -> Score | None:
    """The first score of `HEADLINES` with a value (None when there is none)."""
    for scorer, metric in HEADLINES:
        found = score_for(scores, scorer, metric)
        if found is not None:
            return found
    return None


def best_of(candidates: Sequence[Interpretation]) -> Interpretation | None:
    """The explanation to show among one latent's (see the module docstring); None when none is usable."""
    usable = [c for c in candidates if c.explanation.ok]
    judged = next(
        ((s, m) for s, m in HEADLINES if any(score_for(c.scores, s, m) for c in usable)),
        None,
    )

    def rank(c: Interpretation) -> tuple[float, float, datetime, str]:
        found = score_for(c.scores, *judged) if judged else None
        value = found.value if found is not None else -math.inf
        confidence = c.explanation.confidence
        sure = float(confidence) if confidence is not None and finite(confidence) else -1.0
        return (value, sure, c.created, c.explanation.explainer)

    return max(usable, key=rank, default=None)


__all__ = ["HEADLINES", "Interpretation", "best_of", "finite", "headline", "score_for"]
