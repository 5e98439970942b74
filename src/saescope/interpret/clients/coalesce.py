"""`Coalescing`: the requests of many concurrent callers sent as one `chat_many` call.

Explainers and scorers ask for one latent at a time. Through a batch API that would make one
provider batch per latent, each waiting its own turn (minutes to hours). `Coalescing` holds every
request made within `window` seconds of the first one and hands them to the wrapped client as a
single `chat_many` — one batch for all the latents in flight — then gives each caller its own
answers. An error raised by the wrapped client reaches every caller of that round.

This module knows nothing about any provider or batch format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .base import LLM, ChatRequest, ChatResponse


class Coalescing:
    """An `LLM` that gathers concurrent requests into rounds (see the module docstring)."""

    def __init__(self, client: LLM, window: float = 2.0) -> None:
        self.client = client
        self.window = window
        self.rounds = 0
        """`chat_many` calls made on the wrapped client so far."""
        self._pending: list[tuple[ChatRequest, asyncio.Future[ChatResponse]]] = []
        self._flush: asyncio.Task[None] | None = None

    @property
    def usage(self) -> Any:
        """The wrapped client's usage meter."""
        return getattr(self.client, "usage", None)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request in the next round."""
        return (await self.chat_many([request]))[0]

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer `requests` in order, in the next round."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._pending.extend(zip(requests, futures))
        if self._flush is None:
            self._flush = asyncio.create_task(self._send_later())
        return list(await asyncio.gather(*futures))

    async def _send_later(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending, self._flush = self._pending, [], None
        self.rounds += 1
        try:
            answers = await self.client.chat_many([request for request, _ in batch])
        except Exception as e:
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), answer in zip(batch, answers):
            if not future.done():
                future.set_result(answer)

    async def aclose(self) -> None:
        """Close the wrapped client."""
        close = getattr(self.client, "aclose", None)
        if close is not None:
            await close()


__all__ = ["Coalescing"]
