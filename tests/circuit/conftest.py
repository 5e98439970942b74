"""Fixtures of the circuit tests: one thread, the tiny Llama with random transcoders, a prompt."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from saescope.tokens import encode
from tests.builders import one_thread, tiny_llama, tiny_tokenizer

PROMPT = "the cat is on the mat in Paris"


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def loaded() -> Any:
    """The tiny Llama and its tokenizer, as `load_model` hands them (name, model, tokenizer)."""
    return SimpleNamespace(model=tiny_llama(), tokenizer=tiny_tokenizer(), name="tiny")


@pytest.fixture(scope="module")
def prompt_ids(loaded: Any) -> list[int]:
    return encode(loaded.tokenizer, PROMPT)
