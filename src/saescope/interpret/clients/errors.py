"""What can go wrong when talking to a language model, sorted by who can fix it.

Raised to the caller (each a `SaescopeError`, so the CLI prints one line and no traceback):
`MissingAPIKeyError` (the environment variable holding the key is unset), `AuthenticationFailedError`
(the endpoint rejected the key), `EndpointUnreachableError` (no connection after every retry),
`MissingPackageError` (the `openai`/`anthropic` package is not installed) and `BatchError` (a batch
state file that cannot be used). Messages never contain a key's value: backends pass every text
they did not write through `redact`.

Internal to the clients, never seen by callers: `TransientError` (worth retrying: rate limit,
server error, timeout, dropped connection; may carry the server's `retry-after`) and
`RequestFailedError` (this one request cannot succeed; it becomes a `ChatResponse` with `error`).

This module knows nothing about any provider's SDK.
"""

from __future__ import annotations

from typing import Literal

from ...errors import SaescopeError


class LLMError(SaescopeError):
    """A language-model backend that cannot be used as configured."""


class MissingAPIKeyError(LLMError):
    """The environment variable that should hold the API key is unset or empty."""


class AuthenticationFailedError(LLMError):
    """The endpoint rejected the API key (HTTP 401/403)."""


class EndpointUnreachableError(LLMError):
    """No connection to the endpoint after every retry."""


class MissingPackageError(LLMError):
    """The provider's Python package is not installed."""


class BatchError(LLMError):
    """A batch state file that is corrupt or belongs to another backend."""


TransientKind = Literal["rate_limit", "server", "timeout", "connection"]


class TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait in seconds, if any."""

    def __init__(self, message: str, kind: TransientKind, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: TransientKind = kind
        self.retry_after = retry_after


class RequestFailedError(Exception):
    """A failure of this one request that retrying cannot fix (bad request, malformed response)."""


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line, shortened to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def redact(text: str, secret: str | None) -> str:
    """`text` on one line with every occurrence of `secret` (and of its long pieces) replaced by `***`."""
    out = one_line(text)
    if secret:
        out = out.replace(secret, "***")
        # providers echo masked keys ("sk-abc1***wxyz"); drop any 8-character piece of ours as well
        for i in range(0, max(0, len(secret) - 7)):
            piece = secret[i : i + 8]
            if piece in out:
                out = out.replace(piece, "***")
    return out
