"""The backend registry: a backend's `--backend` name → the code that builds it.

A backend is declared by its settings (`config.backends.BackendSettings`: default model, key
variable, batch API or not, on this machine or not, where it is priced) and bound here to a
factory building the provider object — a `Backend`, or a `BatchBackend` for a batch API — from
`BackendOptions`. `register_backend(settings, factory)` does both, so adding a backend is adding
one file that calls it (and, for one built into saescope, its import below and its settings in
`config.backends.BACKENDS`, where `--backend` finds them without importing this stage). The
built-in ones register at the end of `openai_api`, `anthropic_api` and `local`. `make_client`
builds any of them by name around the shared machinery.

This module knows nothing about any provider's wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ...config.backends import BackendSettings, backend_names, backend_settings, declare_backend
from ...errors import ConfigError


class BackendOptions(NamedTuple):
    """What a backend factory is given."""

    base_url: str | None
    """The endpoint asked for (None: the provider's own)."""
    api_key_env: str | None
    """The environment variable holding the key (the backend's `key_env` unless the caller named
    another; None: send no key)."""
    device: str
    """Where a model on this machine runs (`cpu`, `cuda`, `cuda:N`)."""


BackendFactory = Callable[[BackendOptions], Any]
"""Builds the provider object: a `Backend` (online), or a `BatchBackend` when the backend is `batch`."""


class BackendEntry(NamedTuple):
    """One registered backend."""

    settings: BackendSettings
    """What choosing it implies."""
    build: BackendFactory
    """Builds it."""


_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(settings: BackendSettings, build: BackendFactory) -> BackendSettings:
    """Offer the backend `settings` describes (as `--backend NAME`), built by `build`."""
    declare_backend(settings)
    _FACTORIES[settings.name] = build
    return settings


def _load_builtin() -> None:
    # Imported for their register_backend side effect.
    from . import anthropic_api, local, openai_api  # noqa: F401


def built_names() -> list[str]:
    """The backends something builds, sorted (every declared one, once the built-in ones load)."""
    _load_builtin()
    return sorted(_FACTORIES)


def backend_entry(name: str) -> BackendEntry:
    """The backend `name` with its factory (ConfigError naming the choices when there is none)."""
    settings = backend_settings(name)
    _load_builtin()
    if name not in _FACTORIES:
        raise ConfigError(f"the backend {name!r} is declared but nothing builds it (register_backend)")
    return BackendEntry(settings, _FACTORIES[name])


__all__ = [
    "BackendEntry",
    "BackendFactory",
    "BackendOptions",
    "BackendSettings",
    "backend_entry",
    "backend_names",
    "built_names",
    "register_backend",
]
