"""The server's limits on one request, checked before any model work, and the error naming a limit.

A request over a limit gets HTTP 413 (too long a text) or 422 (too many of something) with a
JSON body naming the limit, its value and the flag that changes it, so a script can react and a
person knows what to do. Texts are counted in the model's tokens, as the model will see them;
a text longer than `CHARS_PER_TOKEN` characters per allowed token is refused before it is even
tokenized (a multi-megabyte paste costs nothing).

This module knows nothing about HTTP or the model.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..config.serve import ServeConfig
from ..errors import SaescopeError

CHARS_PER_TOKEN = 64
"""No token of any tokenizer we know spans more characters than this."""


class Limits(NamedTuple):
    """Upper bounds of one request (from `saescope serve`'s flags)."""

    max_prompt_tokens: int
    """Longest steering prompt, in tokens."""
    max_prompts: int
    """Prompts per steering request."""
    max_new_tokens: int
    """Tokens generated per prompt."""
    max_latents: int
    """Latents edited per steering request."""
    max_text_tokens: int
    """Longest text of the text inspector, in tokens."""
    max_effects_tokens: int
    """Longest text of an effects analysis, in tokens."""
    max_examples: int
    """Examples per latent query."""

    @classmethod
    def of(cls, cfg: ServeConfig) -> Limits:
        """The limits a serve config sets."""
        return cls(*(getattr(cfg, name) for name in cls._fields))


class LimitError(SaescopeError):
    """A request over one of the server's limits."""

    def __init__(self, limit: str, value: int, given: int, message: str) -> None:
        flag = "--" + limit.replace("_", "-")
        super().__init__(f"{message} (change it with saescope serve {flag})")
        self.limit = limit
        self.value = value
        self.given = given
        self.status = 413 if limit.endswith("_tokens") and limit != "max_new_tokens" else 422

    def to_json(self) -> dict[str, Any]:
        """The error's JSON body."""
        return {"error": str(self), "limit": self.limit, "value": self.value, "given": self.given}


def check_count(limits: Limits, limit: str, given: int, what: str) -> None:
    """Refuse `given` above the limit named `limit`."""
    value = int(getattr(limits, limit))
    if given > value:
        raise LimitError(limit, value, given, f"{what} is {given}, over the limit {limit} = {value}")


def check_chars(limits: Limits, limit: str, text: str, what: str) -> None:
    """Refuse a text too long to hold the limit's tokens, before tokenizing it."""
    value = int(getattr(limits, limit))
    if len(text) > value * CHARS_PER_TOKEN:
        message = f"{what} has {len(text)} characters, more than {limit} = {value} tokens can hold"
        raise LimitError(limit, value, len(text) // CHARS_PER_TOKEN, message)


__all__ = ["CHARS_PER_TOKEN", "LimitError", "Limits", "check_chars", "check_count"]
