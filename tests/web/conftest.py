"""Fixtures of the web tests: one tiny run (SAE, index with hostile text, explanations, eval) for
the whole session, and one server on it (limits small enough to test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from saescope.config.serve import ServeConfig

from .builders import build_run
from .servers import Running, running

LIMITS = {
    "max_prompt_tokens": 40,
    "max_prompts": 3,
    "max_new_tokens": 200,
    "max_latents": 3,
    "max_text_tokens": 60,
    "max_effects_tokens": 24,
    "max_examples": 50,
    "queue": 2,
}
"""The shared server's limits (small: each can be crossed in a test)."""


@pytest.fixture(scope="session")
def run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run (see builders.py). Read-only."""
    return build_run(tmp_path_factory.mktemp("web"), tiny_model_dir)


@pytest.fixture(scope="session")
def server(run: Path) -> Iterator[Running]:
    """A server on the tiny run, shared by the session's web tests."""
    with running(ServeConfig(run=run, device="cpu", port=0, **LIMITS)) as up:
        yield up
