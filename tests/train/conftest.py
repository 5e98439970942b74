"""Fixtures of the training tests: one thread per test process, and a shared synthetic store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .builders import write_store


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: two threads competing with other work on a 2-core machine make every
    step several times slower (see tests/sae/builders.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 store of 4096 rows (d 32) of sparse combinations of a ground-truth dictionary."""
    return write_store(tmp_path_factory.mktemp("train_store") / "acts")
