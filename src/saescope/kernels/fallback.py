"""Run a Triton kernel, or the plain-torch equivalent when the kernel cannot run on this GPU.

A kernel that fails the first time it is used on a device (Triton cannot compile it for an older
GPU, the driver rejects the launch) is marked broken for that device: a warning is logged once
and the plain-torch path is used from then on. A kernel that has run once is trusted: later
errors (out of memory, bad inputs) propagate. `SAESCOPE_TRITON_STRICT=1` turns the fallback off,
so tests see every kernel error. This module knows nothing about the kernels themselves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

import torch

logger = logging.getLogger(__name__)
T = TypeVar("T")

_trusted: set[tuple[str, str]] = set()
_broken: set[tuple[str, str]] = set()


def run_with_fallback(name: str, device: torch.device, fast: Callable[[], T], slow: Callable[[], T]) -> T:
    """`fast()` (the Triton path), or `slow()` when `name` cannot run on `device` (see module doc)."""
    key = (name, str(device))
    if key in _broken:
        return slow()
    if key in _trusted:
        return fast()
    try:
        out = fast()
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:
        if os.environ.get("SAESCOPE_TRITON_STRICT") == "1":
            raise
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        logger.warning(
            "Triton kernel %s failed on %s (%s: %s); using the plain-torch path instead",
            name,
            device,
            type(exc).__name__,
            reason,
        )
        _broken.add(key)
        return slow()
    _trusted.add(key)
    return out


def reset() -> None:
    """Forget which kernels ran or failed (tests)."""
    _trusted.clear()
    _broken.clear()
