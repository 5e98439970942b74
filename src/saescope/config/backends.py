"""The language-model backends `saescope interpret --backend` offers: name → what choosing it implies.

`BACKENDS` holds each backend's settings: the model asked when none is named, the environment
variable its key is read from, whether it is a batch API, whether its model runs on this machine,
and the provider's own endpoint, where its price table applies. `saescope.interpret.clients.registry`
binds each name to the code that builds it (a test checks that every name here is bound), and a
backend from outside declares and binds itself with one call there (`register_backend`, which adds
its settings here). Keeping the settings here lets `saescope interpret --help` list the backends
and `InterpretConfig` check them without importing the interpret stage.

Only the provider's own endpoint is priced: the same model name served by a proxy, a local vLLM or
any other compatible server is counted but reported unpriced (its price is not the table's).

This module knows nothing about any provider's API.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from ..errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"
"""OpenAI's own endpoint."""
ANTHROPIC_URL = "https://api.anthropic.com"
"""Anthropic's own endpoint."""


def same_endpoint(url: str, other: str) -> bool:
    """Whether two URLs name the same scheme and host (case-insensitively)."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme.lower(), a.hostname or "") == (b.scheme.lower(), b.hostname or "")


class BackendSettings(NamedTuple):
    """What choosing one backend implies."""

    name: str
    """Its name on the command line (`--backend`)."""
    default_model: str
    """The model asked when none is named."""
    key_env: str | None = None
    """The environment variable its key is read from by default (None: it needs no key)."""
    batch: bool = False
    """Whether it is a batch API: requests gathered into batches, answered within hours, resumed
    from a state file after a kill."""
    local: bool = False
    """Whether its model runs on this machine: free, one request at a time, never retried, no
    endpoint or key; a small model, so its explanations are begun for it."""
    priced_at: str | None = None
    """The provider's own endpoint, where the price table applies (None: never priced)."""

    def priced(self, base_url: str) -> bool:
        """Whether calls to `base_url` are priced: only at the provider's own endpoint."""
        return self.priced_at is not None and same_endpoint(base_url, self.priced_at)


BACKENDS: dict[str, BackendSettings] = {
    s.name: s
    for s in (
        BackendSettings("anthropic", "claude-haiku-4-5", "ANTHROPIC_API_KEY", priced_at=ANTHROPIC_URL),
        BackendSettings(
            "anthropic-batch", "claude-haiku-4-5", "ANTHROPIC_API_KEY", batch=True, priced_at=ANTHROPIC_URL
        ),
        BackendSettings("local", "smollm2-135m", local=True),
        BackendSettings("openai", "gpt-4o-mini", "OPENAI_API_KEY", priced_at=OPENAI_URL),
        BackendSettings("openai-batch", "gpt-4o-mini", "OPENAI_API_KEY", batch=True, priced_at=OPENAI_URL),
    )
}
"""Backend name → its settings; `saescope.interpret.clients.registry` builds each."""


def declare_backend(settings: BackendSettings) -> BackendSettings:
    """Offer a backend under `settings.name` (what `register_backend` does for one from outside)."""
    BACKENDS[settings.name] = settings
    return settings


def backend_names() -> list[str]:
    """The backends, sorted (the choices of `--backend`)."""
    return sorted(BACKENDS)


def backend_settings(name: str) -> BackendSettings:
    """The settings of backend `name`; `ConfigError` naming the others when there is none."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}")
    return BACKENDS[name]


__all__ = [
    "ANTHROPIC_URL",
    "BACKENDS",
    "OPENAI_URL",
    "BackendSettings",
    "backend_names",
    "backend_settings",
    "declare_backend",
    "same_endpoint",
]
