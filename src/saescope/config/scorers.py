"""The scorers `saescope interpret --scorers` offers: name → what choosing it implies.

`SCORERS` holds each scorer's settings (whether it asks a language model);
`saescope.interpret.scorer_registry` binds each name to the code that builds it (a test checks
that every name here is bound), and a scorer from outside declares and binds itself with one call
there (`register_scorer`, which adds its settings here). Keeping the settings here lets
`saescope interpret --help` list the scorers and `InterpretConfig` check them without importing
the interpret stage.

This module knows nothing about how explanations are scored.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import ConfigError


class ScorerSettings(NamedTuple):
    """What choosing one scorer implies."""

    name: str
    """Its name on the command line (`--scorers`)."""
    asks_llm: bool
    """Whether it asks a language model (then the run needs a backend)."""


SCORERS: dict[str, ScorerSettings] = {
    s.name: s
    for s in (
        ScorerSettings("detection", asks_llm=True),
        ScorerSettings("fuzzing", asks_llm=True),
        ScorerSettings("simulation", asks_llm=True),
        ScorerSettings("stats", asks_llm=False),
    )
}
"""Scorer name → its settings; `saescope.interpret.scorer_registry` builds each."""


def declare_scorer(settings: ScorerSettings) -> ScorerSettings:
    """Offer a scorer under `settings.name` (what `register_scorer` does for one from outside)."""
    SCORERS[settings.name] = settings
    return settings


def scorer_names() -> list[str]:
    """The scorers, sorted (the choices of `--scorers`)."""
    return sorted(SCORERS)


def scorer_settings(name: str) -> ScorerSettings:
    """The settings of scorer `name`; `ConfigError` naming the others when there is none."""
    if name not in SCORERS:
        raise ConfigError(f"unknown scorer {name!r}; choose from {', '.join(scorer_names())}")
    return SCORERS[name]


__all__ = ["SCORERS", "ScorerSettings", "declare_scorer", "scorer_names", "scorer_settings"]
