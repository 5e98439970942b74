"""`ChatClient`: one provider's online API with the shared machinery around it.

Around each `Backend.complete` call: the response cache (a hit costs nothing and sends nothing),
a concurrency limit (an `asyncio.Semaphore`, held during backoff so that a rate-limited endpoint
is not hammered), a per-request timeout, retries with exponential backoff and jitter that honour
the server's `retry-after`, and the usage meter (pricing the calls only when told that the endpoint
is the provider's own: `make_client` decides). A request that fails for good comes back as a
`ChatResponse` with `error`; only what the user must fix (missing or rejected key, an endpoint
that cannot be reached at all) is raised, as an `LLMError`.

This module knows nothing about any provider's wire format.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .base import Backend, ChatRequest, ChatResponse
from .cache import ResponseCache
from .errors import EndpointUnreachableError, RequestFailedError, TransientError, one_line
from .retry import RetryPolicy, with_retries
from .usage import UsageMeter

logger = logging.getLogger(__name__)


def as_cache(cache: ResponseCache | str | Path | None) -> ResponseCache | None:
    """A `ResponseCache` for a path (None: no cache)."""
    return cache if cache is None or isinstance(cache, ResponseCache) else ResponseCache(cache)


class ChatClient:
    """Online chat completions through `backend`, cached, limited, retried and metered."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | str | Path | None = None,
        usage: UsageMeter | None = None,
        priced: bool = False,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.backend = backend
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.cache = as_cache(cache)
        self.usage = usage or UsageMeter()
        self.max_concurrency = max_concurrency
        self.priced = priced
        """Whether the meter prices this client's calls (the provider's own endpoint only)."""
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._rng = random.Random(self.retry.seed)

    def _semaphore(self) -> asyncio.Semaphore:
        # one per event loop: a semaphore is bound to the loop it first waited in
        loop = asyncio.get_running_loop()
        if loop not in self._semaphores:
            self._semaphores = {loop: asyncio.Semaphore(self.max_concurrency)}
        return self._semaphores[loop]

    def key(self, request: ChatRequest) -> str:
        """The request's cache key for this backend."""
        return request.key(self.backend.name, self.backend.base_url)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request: from the cache, else from the backend (failures as `error`)."""
        key = self.key(request)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            self.usage.record(request.model, hit)
            return hit
        async with self._semaphore():
            response = await self._ask(request)
        if self.cache is not None:
            self.cache.put(key, response, request.model)
        self.usage.record(request.model, response, getattr(self.backend, "discount", 1.0), self.priced)
        return response

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer several requests concurrently (up to the limit), in order."""
        return list(await asyncio.gather(*(self.chat(r) for r in requests)))

    async def _attempt(self, request: ChatRequest) -> ChatResponse:
        try:
            return await asyncio.wait_for(self.backend.complete(request, self.timeout), self.timeout)
        except (asyncio.TimeoutError, TransientError) as e:
            if isinstance(e, TransientError) and e.kind != "timeout":
                raise
            raise TransientError(f"timed out after {self.timeout:g}s", "timeout") from None

    async def _ask(self, request: ChatRequest) -> ChatResponse:
        what = f"{self.backend.name} {request.model}"
        try:
            return await with_retries(lambda: self._attempt(request), self.retry, what, self._rng)
        except TransientError as e:
            if e.kind == "connection":
                raise EndpointUnreachableError(
                    f"cannot reach {self.backend.base_url}: {e} (after {self.retry.max_retries} retries)"
                ) from None
            logger.warning("%s: giving up after %d retries: %s", what, self.retry.max_retries, e)
            return ChatResponse("", error=one_line(f"{e} (after {self.retry.max_retries} retries)"))
        except RequestFailedError as e:
            logger.warning("%s: request failed: %s", what, e)
            return ChatResponse("", error=one_line(str(e)))

    async def aclose(self) -> None:
        """Release the backend's connections."""
        await self.backend.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
