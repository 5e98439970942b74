"""The scorer registry: a scorer's `--scorers` name → how it is built from the settings.

A scorer is declared by its settings (`config.scorers.ScorerSettings`: whether it asks a language
model) and bound here to a factory: a function of the `InterpretConfig` and the language-model
client (None when the run asks no model) returning a `Scorer`. `@register_scorer(settings)` on the
factory does both, so adding a scorer is adding one file with a decorated factory (and, for one
built into saescope, its import below and its settings in `config.scorers.SCORERS`, where
`--scorers` finds them without importing this stage); the built-in ones are registered at the end
of `scorers`. `saescope interpret` builds each chosen scorer with `make_scorer`.

This module knows nothing about how scores are computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ..config.scorers import ScorerSettings, declare_scorer, scorer_names, scorer_settings
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config.interpret import InterpretConfig
    from .clients.base import LLM
    from .scorers import Scorer

ScorerFactory = Callable[["InterpretConfig", "LLM | None"], "Scorer"]
"""Builds a scorer from the settings and the client (None when the run asks no language model)."""

F = TypeVar("F", bound=ScorerFactory)


class ScorerEntry(NamedTuple):
    """One registered scorer."""

    settings: ScorerSettings
    """What choosing it implies."""
    build: ScorerFactory
    """Builds it."""


_FACTORIES: dict[str, ScorerFactory] = {}


def register_scorer(settings: ScorerSettings) -> Callable[[F], F]:
    """Decorator of a scorer factory: offer it as `--scorers NAME` (`settings.name`)."""

    def register(factory: F) -> F:
        declare_scorer(settings)
        _FACTORIES[settings.name] = factory
        return factory

    return register


def _load_builtin() -> None:
    # Imported for their @register_scorer side effect.
    from . import scorers  # noqa: F401


def built_names() -> list[str]:
    """The scorers something builds, sorted (every declared one, once the built-in ones load)."""
    _load_builtin()
    return sorted(_FACTORIES)


def scorer_entry(name: str) -> ScorerEntry:
    """The scorer `name` with its factory (ConfigError naming the choices when there is none)."""
    settings = scorer_settings(name)
    _load_builtin()
    if name not in _FACTORIES:
        raise ConfigError(f"the scorer {name!r} is declared but nothing builds it (register_scorer)")
    return ScorerEntry(settings, _FACTORIES[name])


def make_scorer(name: str, cfg: InterpretConfig, client: LLM | None) -> Scorer:
    """The scorer `name`, built from `cfg` (with `client` when it asks a language model)."""
    entry = scorer_entry(name)
    if entry.settings.asks_llm and client is None:
        raise ValueError(f"the {name} scorer asks a language model: give it a client")
    return entry.build(cfg, client)


__all__ = [
    "ScorerEntry",
    "ScorerFactory",
    "ScorerSettings",
    "built_names",
    "make_scorer",
    "register_scorer",
    "scorer_entry",
    "scorer_names",
    "scorer_settings",
]
