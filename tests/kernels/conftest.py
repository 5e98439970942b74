"""Kernel tests: set up the Triton interpreter before any kernel module is imported (`triton_env`),
and run each test with the garbage collector paused.

Why the pause: the interpreter parses each Triton function's source with `ast.parse` on first use,
and once in a full run of the suite that parse failed with CPython 3.11's "AST constructor
recursion depth mismatch (before=153, after=206)". CPython keeps that counter in state shared by
every parse (gh-106905); a counter that grew means a second parse ran, from a deeper stack, while
the first built its tree — Python code run by a garbage collection in the middle of it, as nothing
else runs then. Collecting before each test and pausing collection during it keeps that code out of
the interpreter's parses.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from . import triton_env  # noqa: F401  (sets TRITON_INTERPRET / SAESCOPE_TRITON_STRICT on import)


@pytest.fixture(autouse=True)
def no_collection_during_the_test() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
