"""Fixtures of the steering tests: one thread, and random TopK SAEs bound to the tiny Llama and GPT-2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from saescope.bound import BoundSAE
from tests.builders import one_thread, tiny_gpt2, tiny_tokenizer

from .builders import bind, topk_sae


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def bound(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BoundSAE:
    """A random TopK SAE (64 latents, k=6) at resid_post:1 of the tiny Llama. Read-only."""
    return bind(topk_sae(tiny_model_dir), tmp_path_factory.mktemp("steer") / "sae")


@pytest.fixture(scope="module")
def gpt2_bound(tmp_path_factory: pytest.TempPathFactory) -> BoundSAE:
    """The same kind of SAE on a tiny GPT-2, whose learned absolute positions make a padding
    mistake visible (Llama's rotary positions only see relative offsets). Read-only."""
    folder = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    tiny_gpt2().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return bind(topk_sae(folder), folder.parent / "sae")
