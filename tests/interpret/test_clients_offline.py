"""Client machinery without a network: optional packages, the cache file, batch failures."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from saescope.interpret.clients import (
    BatchClient,
    ChatRequest,
    ChatResponse,
    MissingPackageError,
    ResponseCache,
)
from saescope.interpret.clients.base import BatchStatus
from saescope.interpret.clients.errors import redact


def test_interpret_imports_without_the_provider_packages() -> None:
    code = (
        "import sys; import saescope.interpret, saescope.interpret.clients.factory; "
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from saescope.interpret.clients import make_client

    monkeypatch.setitem(sys.modules, "openai", None)  # what `import openai` sees when it is not installed
    with pytest.raises(MissingPackageError, match=r"pip install 'saescope\[llm\]'"):
        make_client("openai", api_key_env=None)


def test_cache_survives_a_line_cut_short(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.jsonl"
    cache = ResponseCache(path)
    cache.put("k1", ChatResponse("one", 3, 1))
    cache.put("k1", ChatResponse("again", 3, 1))  # first answer wins, nothing appended
    cache.put("k2", ChatResponse("", error="failed"))  # failures are not stored
    with path.open("a") as f:
        f.write('{"key": "k3", "response": {"text": "cut')  # a run killed mid-write
    with caplog.at_level(logging.WARNING):
        reloaded = ResponseCache(path)
        assert reloaded.get("k1") == ChatResponse("one", 3, 1, cached=True)
    assert len(reloaded) == 1 and "skipped 1 unreadable line" in caplog.text
    reloaded.put("k4", ChatResponse("four"))
    assert ResponseCache(path).get("k4") is not None


def test_redact_hides_the_key_and_its_pieces() -> None:
    secret = "sk-live-abcdefghijklmnop"
    assert redact(f"bad key {secret}\nretry", secret) == "bad key *** retry"
    assert "abcdefgh" not in redact("key sk-live-abcdefgh***mnop rejected", secret)


class FailingBatches:
    """A batch API whose batch fails after answering one request of two."""

    name = "fake"
    base_url = "fake://"
    discount = 0.5

    def __init__(self) -> None:
        self.submitted: list[list[str]] = []

    async def submit(self, items: Sequence[tuple[str, ChatRequest]]) -> str:
        self.submitted.append([k for k, _ in items])
        return f"b{len(self.submitted)}"

    async def poll(self, batch_id: str) -> BatchStatus:
        return BatchStatus("failed", "expired")

    async def results(self, batch_id: str) -> dict[str, ChatResponse]:
        return {self.submitted[-1][0]: ChatResponse("partial", 5, 2)}

    async def aclose(self) -> None:
        pass


def test_failed_batch_keeps_partial_answers_and_is_forgotten(tmp_path: Path) -> None:
    backend = FailingBatches()
    client = BatchClient(backend, tmp_path / "state.json", cache=tmp_path / "cache.jsonl", poll_interval=0.01)
    requests = [ChatRequest.of("m", "a"), ChatRequest.of("m", "b")]
    first, second = asyncio.run(client.chat_many(requests))
    assert first.text == "partial" and second.error == "batch b1 failed: expired"
    assert json.loads((tmp_path / "state.json").read_text())["batches"] == []
    assert client.usage.total().calls == 2 and client.usage.total().failed == 1
    # the rerun asks only for what is missing
    asyncio.run(
        BatchClient(backend, tmp_path / "state.json", cache=tmp_path / "cache.jsonl").chat_many(requests)
    )
    assert backend.submitted[1] == [client.key(requests[1])]
