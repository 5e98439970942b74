"""Fixtures of the steering tests: one thread, and a random TopK SAE bound to the tiny Llama."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from builders import one_thread
from saescope.bound import BoundSAE

from .builders import bind, topk_sae


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def bound(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BoundSAE:
    """A random TopK SAE (64 latents, k=6) at resid_post:1 of the tiny Llama. Read-only."""
    return bind(topk_sae(tiny_model_dir), tmp_path_factory.mktemp("steer") / "sae")
