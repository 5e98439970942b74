"""The run's model behind the server: one thread runs all its work, one generation at a time.

Every use of the model (encoding a text, one step of a generation, an effects analysis) runs on
ONE worker thread, one call after another. Hooks are therefore never registered by two calls at
once (a steering patch cannot leak into a text inspection), and the event loop never blocks on the
model, so browsing stays responsive while a generation runs. A generation is a series of calls,
one per token, so inspections slip in between its tokens instead of waiting for it to end.

Generations are admitted one at a time (`generation_slot`); up to `queue` more wait in line and
anything beyond gets `Busy` (the server answers HTTP 503 with Retry-After). The SAE and its model
are loaded on the worker thread by the first call (`warm` starts that at server start).

This module knows nothing about HTTP, pages or what the calls compute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, TypeVar

from ..bound import BoundSAE
from ..errors import SaescopeError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER = 5
"""Seconds a client told "busy" is asked to wait before retrying."""


class Busy(SaescopeError):
    """Every generation slot and queue place is taken: retry later."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WorkerState(NamedTuple):
    """What the worker is doing (the status endpoint shows it)."""

    loaded: bool
    """Whether the SAE and its model are loaded."""
    generating: int
    """Generations running (0 or 1)."""
    waiting: int
    """Generations waiting for the slot."""
    queue: int
    """Waiting places."""
    load_error: str | None
    """Why loading failed (None when it did not)."""


class ModelWorker:
    """The bound SAE and the single thread that uses it (see the module docstring)."""

    def __init__(self, load: Callable[[], BoundSAE], queue: int) -> None:
        self._load = load
        self._bound: BoundSAE | None = None
        self._load_error: str | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="saescope-model")
        self._slot: asyncio.Lock | None = None
        self._waiting = 0
        self.queue = queue

    # ----- model calls ------------------------------------------------------------------
    def _bound_sae(self) -> BoundSAE:
        """The bound SAE, loaded on first use (on the worker thread)."""
        if self._bound is None:
            try:
                self._bound = self._load()
            except SaescopeError as e:
                self._load_error = str(e)
                raise
        return self._bound

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._bound_sae(), *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(bound, *args)` on the worker thread, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, fn, *args)

    async def call_unbound(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the worker thread without the run's SAE (model work of its own, e.g. an
        attribution graph's model and dictionaries, serialised with every other model call)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """`fn(bound, *args)` queued on the worker thread, not awaited (clean-up after a client
        left: it runs after whatever the worker is doing now)."""
        return self._executor.submit(self._run, fn, *args)

    def warm(self) -> None:
        """Start loading the SAE and its model in the background."""
        future = self._executor.submit(self._bound_sae)
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        """Stop the worker thread (queued calls are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ----- generation admission ---------------------------------------------------------
    async def admit(self) -> Callable[[], None]:
        """Wait in line for the generation slot (or raise `Busy` when the line is full); returns
        the function that releases it (calling it again does nothing)."""
        if self._slot is None:
            self._slot = asyncio.Lock()
        slot = self._slot
        if slot.locked() and self._waiting >= self.queue:
            raise Busy(f"busy: a generation is running and {self._waiting} wait; retry in {RETRY_AFTER} s")
        self._waiting += 1
        try:
            await slot.acquire()
        finally:
            self._waiting -= 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slot.release()

        return release

    @asynccontextmanager
    async def generation_slot(self) -> AsyncIterator[None]:
        """Hold the generation slot for the block (see `admit`)."""
        release = await self.admit()
        try:
            yield
        finally:
            release()

    @property
    def bound(self) -> BoundSAE | None:
        """The loaded SAE and model (None until loaded); for diagnostics: use it through `call`."""
        return self._bound

    def state(self) -> WorkerState:
        """What the worker is doing now."""
        generating = int(self._slot is not None and self._slot.locked())
        return WorkerState(self._bound is not None, generating, self._waiting, self.queue, self._load_error)


def _log_failure(future: Future[Any]) -> None:
    error = future.exception()
    if error is not None:
        log.error("loading the SAE and its model failed: %s", error)


__all__ = ["RETRY_AFTER", "Busy", "ModelWorker", "WorkerState"]
