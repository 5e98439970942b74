"""Fixtures of the training tests: one thread per test process, and a shared synthetic store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import one_thread

from .builders import write_store


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 store of 4096 rows (d 32) of sparse combinations of a ground-truth dictionary."""
    return write_store(tmp_path_factory.mktemp("train_store") / "acts")
