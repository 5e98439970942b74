"""Kernel tests: set up the Triton interpreter before any kernel module is imported (`triton_env`)."""

from __future__ import annotations

from . import triton_env  # noqa: F401  (sets TRITON_INTERPRET / SAESCOPE_TRITON_STRICT on import)
