"""What the official `openai` and `anthropic` packages have in common, for the backends built on them.

`import_sdk` imports a package only when a backend is built (so `saescope.interpret` imports
without them) and says how to install it when it is missing. `read_api_key` reads the key from the
named environment variable and fails with the variable's name, never a value. `translate_error`
turns the SDKs' exceptions (both have `APITimeoutError`, `APIConnectionError`, `APIStatusError`)
into ours: retryable (429, 408, 409, 5xx, timeouts, dropped connections, with `retry-after`),
fatal for the run (401/403, 404), or a failure of the one request — every message redacted.

This module knows nothing about either provider's request or response format.
"""

from __future__ import annotations

import importlib
import json
import os
from types import ModuleType
from typing import Any

from .errors import (
    AuthenticationFailedError,
    LLMError,
    MissingAPIKeyError,
    MissingPackageError,
    RequestFailedError,
    TransientError,
    redact,
)
from .retry import parse_retry_after

NO_KEY = "no-key-needed"
"""Sent as the key to OpenAI-compatible servers that need none (`api_key_env=None`)."""


def import_sdk(name: str) -> ModuleType:
    """The provider package `name` (`openai` or `anthropic`); `MissingPackageError` says how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingPackageError(
            f"the {name} backend needs the {name} package: pip install 'saescope[llm]'"
        ) from None


def read_api_key(env: str | None, backend: str) -> str | None:
    """The API key in environment variable `env` (None when `env` is None: no key needed)."""
    if env is None:
        return None
    key = os.environ.get(env, "").strip()
    if not key:
        raise MissingAPIKeyError(
            f"the {backend} backend needs an API key in the environment variable {env}, which is not set "
            "(export it, or name another variable with --api-key-env)"
        )
    return key


def _status_error(exc: Any, endpoint: str, key_env: str | None, secret: str | None) -> Exception:
    status = int(exc.status_code)
    message = redact(str(getattr(exc, "message", exc)), secret)
    if status in (401, 403):
        source = f"the key from ${key_env}" if key_env else "the request (no key was sent)"
        return AuthenticationFailedError(f"{endpoint} rejected {source} (HTTP {status})")
    if status == 404:
        return LLMError(f"{endpoint} answered HTTP 404 (wrong base URL or unknown model?): {message}")
    headers = dict(getattr(exc.response, "headers", {}) or {})
    retry_after = parse_retry_after(headers)
    if status == 429:
        return TransientError(f"rate limited (HTTP 429): {message}", "rate_limit", retry_after)
    if status >= 500 or status in (408, 409):
        return TransientError(f"server error (HTTP {status}): {message}", "server", retry_after)
    return RequestFailedError(f"HTTP {status}: {message}")


def translate_error(
    exc: BaseException, sdk: ModuleType, endpoint: str, key_env: str | None, secret: str | None
) -> Exception:
    """Our exception for an exception raised by `sdk` while talking to `endpoint`."""
    if isinstance(exc, sdk.APITimeoutError):
        return TransientError("timed out", "timeout")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        why = redact(f"{type(cause).__name__}: {cause}", secret) if cause else "connection error"
        return TransientError(f"connection failed ({why})", "connection")
    if isinstance(exc, sdk.APIStatusError):
        return _status_error(exc, endpoint, key_env, secret)
    if isinstance(exc, (sdk.APIResponseValidationError, json.JSONDecodeError)):
        return RequestFailedError(f"malformed response from {endpoint}: {redact(str(exc), secret)}")
    return RequestFailedError(f"{type(exc).__name__}: {redact(str(exc), secret)}")


def as_dict(obj: Any) -> dict[str, Any]:
    """An SDK response object (pydantic model) or plain dict as a dict; RequestFailedError otherwise."""
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if dump is None:
        raise RequestFailedError(f"malformed response: expected a JSON object, got {type(obj).__name__}")
    out: dict[str, Any] = dump()
    return out


class SDKClient:
    """What the OpenAI and Anthropic backends share: one SDK client (its own retries off: ours
    apply), the endpoint and the name of the key's variable (never the key) in `repr`, the SDK's
    errors translated to ours, and closing."""

    _sdk: ModuleType
    _client: Any
    _secret: str | None
    base_url: str
    api_key_env: str | None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _translate(self, exc: BaseException) -> Exception:
        return translate_error(exc, self._sdk, self.base_url, self.api_key_env, self._secret)

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.close()
