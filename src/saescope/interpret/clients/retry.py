"""Retrying what is worth retrying: exponential backoff with jitter that honours `retry-after`.

`RetryPolicy.delay` is the wait before the next attempt: the server's `retry-after` when it gave one
(seconds, or an HTTP date; `retry-after-ms` too), else `base_delay × 2^attempt` with ± `jitter`,
never more than `max_delay`. `with_retries` runs an async call until it succeeds, raises something
other than `TransientError`, or has used `max_retries` retries (then the last `TransientError` is raised).

This module knows nothing about providers, requests or caches.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_retries: int = 5
    """Retries after the first attempt (0: never retry)."""
    base_delay: float = 1.0
    """Wait before the first retry, seconds (doubled for each further one)."""
    max_delay: float = 120.0
    """Longest wait, seconds (also caps a server's `retry-after`)."""
    jitter: float = 0.25
    """Relative random spread of the backoff (0.25: ±25%), so that clients do not retry in lockstep."""
    seed: int | None = None
    """Seed of the jitter (None: random)."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt + 1` (`attempt` counts from 0)."""
        if retry_after is not None and retry_after >= 0:
            return min(self.max_delay, retry_after)
        backoff = self.base_delay * 2.0**attempt
        return min(self.max_delay, backoff * (1 + self.jitter * (2 * rng.random() - 1)))


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds: `retry-after-ms`, else `retry-after` as seconds or as
    an HTTP date (relative to `now`, default the current time); None when absent or unreadable."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def with_retries(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, what: str, rng: random.Random | None = None
) -> T:
    """Await `call()` until it succeeds, retrying `TransientError`s as `policy` says; `what` names the
    call in log messages."""
    rng = rng or random.Random(policy.seed)
    attempt = 0
    while True:
        try:
            return await call()
        except TransientError as e:
            if attempt >= policy.max_retries:
                raise
            wait = policy.delay(attempt, e.retry_after, rng)
            logger.info("%s: %s; retry %d/%d in %.1fs", what, e, attempt + 1, policy.max_retries, wait)
            await asyncio.sleep(wait)
            attempt += 1
