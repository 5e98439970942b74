"""`BatchClient`: many requests as one provider batch, resumable after the run is killed.

`chat_many` answers what the response cache already holds, submits the rest as one batch (each
request's custom id is its cache key), and writes the batch id with those keys to a small JSON
state file *before* it starts polling. A run killed while waiting finds the batch in the state file
and resumes polling it instead of submitting the same requests again. Polling backs off from
`poll_interval` to `max_poll_interval`; results are mapped back to requests by custom id, stored in
the cache, and the batch is then dropped from the state file. Batch tokens are metered at the
backend's discount (and priced only at the provider's own endpoint: `make_client` decides).

The state file is rewritten atomically (`files.write_json`). A run killed in the
instant between the provider accepting a batch and the state file being written will submit that
batch again; nothing else is ever resubmitted.

This module knows nothing about any provider's wire format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ...files import write_json
from .base import BatchBackend, BatchStatus, ChatRequest, ChatResponse
from .cache import ResponseCache
from .client import as_cache
from .errors import BatchError, EndpointUnreachableError, TransientError
from .retry import RetryPolicy, with_retries
from .usage import UsageMeter

logger = logging.getLogger(__name__)

STATE_FORMAT = 1


class BatchClient:
    """Requests answered through `backend`'s batch API, cached, resumable and metered."""

    def __init__(
        self,
        backend: BatchBackend,
        state_path: str | Path,
        *,
        cache: ResponseCache | str | Path | None = None,
        usage: UsageMeter | None = None,
        retry: RetryPolicy | None = None,
        poll_interval: float = 30.0,
        max_poll_interval: float = 600.0,
        max_wait: float = 26 * 3600.0,
        priced: bool = False,
    ) -> None:
        self.backend = backend
        self.state_path = Path(state_path)
        self.cache = as_cache(cache)
        self.usage = usage or UsageMeter()
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.max_wait = max_wait
        self.priced = priced
        """Whether the meter prices this client's calls (the provider's own endpoint only)."""
        self._rng = random.Random(self.retry.seed)
        self._state: dict[str, Any] | None = None

    def key(self, request: ChatRequest) -> str:
        """The request's key (its custom id in the batch, and its cache key)."""
        return request.key(self.backend.name, self.backend.base_url)

    # ------------------------------------------------------------------------------- state file

    def _load_state(self) -> dict[str, Any]:
        if self._state is not None:
            return self._state
        fresh = {"format": STATE_FORMAT, "backend": self.backend.name, "base_url": self.backend.base_url}
        state: dict[str, Any] = {**fresh, "batches": []}
        if self.state_path.exists():
            try:
                state = json.loads(self.state_path.read_text(encoding="utf-8"))
                ok = all(state.get(k) == v for k, v in fresh.items()) and isinstance(state["batches"], list)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise BatchError(
                    f"batch state file {self.state_path} is unreadable or belongs to another backend "
                    f"than {self.backend.name} at {self.backend.base_url}; move it away to start afresh"
                )
        self._state = state
        return state

    def _save_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.state_path, self._load_state())

    def pending_batches(self) -> list[dict[str, Any]]:
        """Batches submitted and not yet collected: `{"id", "keys", "submitted"}` each."""
        return list(self._load_state()["batches"])

    # ------------------------------------------------------------------------------- requests

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request (as a batch of one)."""
        return (await self.chat_many([request]))[0]

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer `requests` in order: cache hits, then batches resumed or submitted and awaited."""
        keys = [self.key(r) for r in requests]
        answers: dict[str, ChatResponse] = {}
        for k in keys:
            hit = self.cache.get(k) if self.cache is not None else None
            if hit is not None:
                answers[k] = hit
        wanted = {k: r for k, r in zip(keys, requests) if k not in answers}
        if wanted:
            batches = await self._batches_for(wanted)
            for found in await asyncio.gather(*(self._collect(b, wanted) for b in batches)):
                answers.update(found)
        missing = ChatResponse("", error="the batch returned no answer for this request")
        out = [answers.get(k, missing) for k in keys]
        for r, response in zip(requests, out):
            if response.cached:
                self.usage.record(r.model, response)
        for k, r in wanted.items():  # each request sent is counted once, however often it was asked
            self.usage.record(r.model, answers.get(k, missing), self.backend.discount, self.priced)
        return out

    async def _batches_for(self, wanted: dict[str, ChatRequest]) -> list[dict[str, Any]]:
        """The pending batches that hold some of `wanted`, plus a new one for the rest."""
        state = self._load_state()
        batches = [b for b in state["batches"] if any(k in wanted for k in b["keys"])]
        covered = {k for b in batches for k in b["keys"]}
        for b in batches:
            logger.info("resuming batch %s (%d requests) from %s", b["id"], len(b["keys"]), self.state_path)
        new = [(k, r) for k, r in wanted.items() if k not in covered]
        if new:
            batch_id = await self._retrying(lambda: self.backend.submit(new), "submitting a batch")
            batch = {"id": batch_id, "keys": [k for k, _ in new], "submitted": time.time()}
            state["batches"].append(batch)
            self._save_state()
            logger.info(
                "submitted batch %s with %d requests (state in %s)", batch_id, len(new), self.state_path
            )
            batches.append(batch)
        return batches

    async def _retrying(self, call: Any, what: str) -> Any:
        try:
            return await with_retries(call, self.retry, f"{self.backend.name} batch: {what}", self._rng)
        except TransientError as e:
            if e.kind == "connection":
                raise EndpointUnreachableError(f"cannot reach {self.backend.base_url}: {e}") from None
            raise BatchError(f"{self.backend.name} batch: {what} failed: {e}") from None

    async def _wait(self, batch_id: str) -> BatchStatus:
        interval = self.poll_interval
        deadline = time.monotonic() + self.max_wait
        polls = 0
        while True:
            status: BatchStatus = await self._retrying(lambda: self.backend.poll(batch_id), "polling")
            polls += 1
            if status.state != "pending":
                logger.info("batch %s %s after %d poll(s): %s", batch_id, status.state, polls, status.detail)
                return status
            if time.monotonic() + interval > deadline:
                return BatchStatus("pending", f"still running after {self.max_wait:g}s ({status.detail})")
            logger.debug("batch %s pending (%s); next poll in %.1fs", batch_id, status.detail, interval)
            await asyncio.sleep(interval * (1 + 0.1 * self._rng.random()))
            interval = min(self.max_poll_interval, interval * 1.5)

    async def _collect(
        self, batch: dict[str, Any], wanted: dict[str, ChatRequest]
    ) -> dict[str, ChatResponse]:
        """Wait for `batch`, cache its answers and forget it; answers by key."""
        status = await self._wait(batch["id"])
        if status.state == "pending":
            error = f"batch {batch['id']} {status.detail}; rerun to resume polling it"
            return {k: ChatResponse("", error=error) for k in batch["keys"]}
        found: dict[str, ChatResponse] = await self._retrying(
            lambda: self.backend.results(batch["id"]), "fetching results"
        )
        if self.cache is not None:  # every answer, also those a rerun did not ask for this time
            for k, response in found.items():
                self.cache.put(k, response, wanted[k].model if k in wanted else "")
        if status.state == "failed":
            missing = ChatResponse("", error=f"batch {batch['id']} failed: {status.detail}")
            found = {k: found.get(k, missing) for k in batch["keys"]}
        state = self._load_state()
        state["batches"] = [b for b in state["batches"] if b["id"] != batch["id"]]
        self._save_state()
        return found

    async def aclose(self) -> None:
        """Release the backend's connections."""
        await self.backend.aclose()

    async def __aenter__(self) -> BatchClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
