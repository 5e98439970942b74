"""`make_client`: a ready client for a backend name, with the shared machinery configured.

Backends: `openai` (any OpenAI-compatible endpoint), `anthropic`, `openai-batch`,
`anthropic-batch` (need `state_path`) and `local` (a transformers model named in each request).

This module knows nothing about prompts, explainers or scorers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .anthropic_api import AnthropicBackend, AnthropicBatchBackend
from .batch import BatchClient
from .cache import ResponseCache
from .client import ChatClient
from .local import LocalBackend
from .openai_api import OpenAIBackend, OpenAIBatchBackend
from .retry import RetryPolicy
from .usage import UsageMeter

BackendName = Literal["openai", "anthropic", "openai-batch", "anthropic-batch", "local"]
BACKENDS: tuple[BackendName, ...] = ("openai", "anthropic", "openai-batch", "anthropic-batch", "local")

_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_UNSET = "<default>"


def make_client(
    backend: BackendName,
    *,
    base_url: str | None = None,
    api_key_env: str | None = _UNSET,
    cache: ResponseCache | str | Path | None = None,
    usage: UsageMeter | None = None,
    max_concurrency: int = 8,
    timeout: float = 120.0,
    retry: RetryPolicy | None = None,
    state_path: str | Path | None = None,
    poll_interval: float = 30.0,
    device: str = "cpu",
) -> ChatClient | BatchClient:
    """A client for `backend`.

    `api_key_env` names the environment variable holding the key (default `OPENAI_API_KEY` /
    `ANTHROPIC_API_KEY`; None for OpenAI-compatible servers that need no key). Batch backends
    need `state_path`, the JSON file that lets a killed run resume its batches.
    """
    family = backend.removesuffix("-batch")
    key_env = _DEFAULT_KEY_ENV.get(family) if api_key_env == _UNSET else api_key_env
    if backend == "local":
        return ChatClient(
            LocalBackend(device),
            max_concurrency=1,
            timeout=timeout,
            retry=RetryPolicy(0),
            cache=cache,
            usage=usage,
        )
    if backend in ("openai", "anthropic"):
        online = (
            OpenAIBackend(base_url, key_env)
            if backend == "openai"
            else AnthropicBackend(base_url, key_env or "ANTHROPIC_API_KEY")
        )
        return ChatClient(
            online, max_concurrency=max_concurrency, timeout=timeout, retry=retry, cache=cache, usage=usage
        )
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if state_path is None:
        raise ValueError(f"the {backend} backend needs state_path (where its batch ids are kept)")
    batch = (
        OpenAIBatchBackend(base_url, key_env)
        if backend == "openai-batch"
        else AnthropicBatchBackend(base_url, key_env or "ANTHROPIC_API_KEY")
    )
    return BatchClient(batch, state_path, cache=cache, usage=usage, retry=retry, poll_interval=poll_interval)
