"""`Coalescing`: concurrent requests reach the wrapped client as one round, each caller its answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from saescope.interpret.clients.base import ChatRequest, ChatResponse
from saescope.interpret.clients.coalesce import Coalescing


class Echo:
    """Answers each request with its user text; records every `chat_many` call."""

    def __init__(self, fail: bool = False) -> None:
        self.rounds: list[list[str]] = []
        self.fail = fail

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return (await self.chat_many([request]))[0]

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        self.rounds.append([r.messages[-1].content for r in requests])
        if self.fail:
            raise RuntimeError("the batch API said no")
        return [ChatResponse(r.messages[-1].content.upper()) for r in requests]


def ask(n: int) -> list[ChatRequest]:
    return [ChatRequest.of("m", f"q{i}") for i in range(n)]


def test_concurrent_callers_share_one_round() -> None:
    echo = Echo()
    client = Coalescing(echo, window=0.05)

    async def go() -> tuple[list[ChatResponse], ChatResponse, list[ChatResponse]]:
        many = client.chat_many(ask(3))
        one = client.chat(ChatRequest.of("m", "alone"))
        first = await asyncio.gather(many, one)
        later = await client.chat_many(ask(2))
        return first[0], first[1], later

    many, one, later = asyncio.run(go())
    assert [r.text for r in many] == ["Q0", "Q1", "Q2"] and one.text == "ALONE"
    assert [r.text for r in later] == ["Q0", "Q1"]
    assert echo.rounds == [["q0", "q1", "q2", "alone"], ["q0", "q1"]] and client.rounds == 2


def test_an_error_reaches_every_caller_of_the_round() -> None:
    client = Coalescing(Echo(fail=True), window=0.01)

    async def go() -> list[object]:
        return list(
            await asyncio.gather(client.chat_many(ask(2)), client.chat(ask(1)[0]), return_exceptions=True)
        )

    errors = asyncio.run(go())
    assert all(isinstance(e, RuntimeError) for e in errors)
    with pytest.raises(RuntimeError, match="said no"):
        asyncio.run(client.chat(ask(1)[0]))
