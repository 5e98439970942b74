"""The model worker: every call on one thread, one generation at a time, a bounded line."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from saescope.errors import SaescopeError
from saescope.web.worker import Busy, ModelWorker


def fake_load() -> Any:
    return "bound"


def test_every_call_runs_on_one_thread_with_the_loaded_model() -> None:
    worker = ModelWorker(fake_load, queue=1)

    async def calls() -> list[tuple[str, int]]:
        return await asyncio.gather(*[worker.call(lambda b: (b, threading.get_ident())) for _ in range(8)])

    seen = asyncio.run(calls())
    assert {b for b, _ in seen} == {"bound"} and len({t for _, t in seen}) == 1
    assert seen[0][1] != threading.get_ident()
    worker.close()


def test_generations_are_admitted_one_at_a_time_and_the_line_is_bounded() -> None:
    worker = ModelWorker(fake_load, queue=1)

    async def scenario() -> list[str]:
        log: list[str] = []
        first = await worker.admit()
        assert worker.state().generating == 1

        async def second() -> None:
            release = await worker.admit()
            log.append("second admitted")
            release()

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        assert worker.state().waiting == 1 and log == []
        with pytest.raises(Busy) as caught:
            await worker.admit()
        assert caught.value.retry_after > 0 and "busy" in str(caught.value)
        first()
        first()  # releasing twice does nothing
        await waiting
        assert log == ["second admitted"] and worker.state().generating == 0
        return log

    asyncio.run(scenario())
    worker.close()


def test_a_failed_load_is_reported_and_raised() -> None:
    def broken() -> Any:
        raise SaescopeError("no model here")

    worker = ModelWorker(broken, queue=0)
    with pytest.raises(SaescopeError, match="no model here"):
        asyncio.run(worker.call(lambda b: b))
    assert worker.state().load_error == "no model here" and not worker.state().loaded
    worker.close()
