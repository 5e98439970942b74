"""`make_client`: a ready client for a registered backend name, with the shared machinery configured.

Built-in backends (`registry`): `openai` (any OpenAI-compatible endpoint), `anthropic`,
`openai-batch`, `anthropic-batch` (need `state_path`) and `local` (a transformers model named in
each request). An online backend is wrapped in a `ChatClient`, a batch API in a `BatchClient`; a
model on this machine answers one request at a time and is never retried. Calls are priced only at
the provider's own endpoint.

This module knows nothing about prompts, explainers or scorers.
"""

from __future__ import annotations

from pathlib import Path

from .batch import BatchClient
from .cache import ResponseCache
from .client import ChatClient
from .registry import BackendOptions, backend_entry
from .retry import RetryPolicy
from .usage import UsageMeter

_UNSET = "<default>"


def make_client(
    backend: str,
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
    """A client for the registered backend `backend`.

    `api_key_env` names the environment variable holding the key (default: the backend's own,
    `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`; None for OpenAI-compatible servers that need no key).
    Batch backends need `state_path`, the JSON file that lets a killed run resume its batches.
    """
    settings, build = backend_entry(backend)
    if settings.batch and state_path is None:
        raise ValueError(f"the {backend} backend needs state_path (where its batch ids are kept)")
    key_env = settings.key_env if api_key_env == _UNSET else api_key_env
    built = build(BackendOptions(base_url, key_env, device))
    priced = settings.priced(str(built.base_url))
    if settings.batch:
        assert state_path is not None
        return BatchClient(
            built,
            state_path,
            cache=cache,
            usage=usage,
            retry=retry,
            poll_interval=poll_interval,
            priced=priced,
        )
    if settings.local:
        return ChatClient(
            built, max_concurrency=1, timeout=timeout, retry=RetryPolicy(0), cache=cache, usage=usage
        )
    return ChatClient(
        built,
        max_concurrency=max_concurrency,
        timeout=timeout,
        retry=retry,
        cache=cache,
        usage=usage,
        priced=priced,
    )
