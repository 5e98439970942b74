"""Fixtures of the index tests: one thread, a tiny world (model, SAE, corpus), one text index of it
built once, and the same tokens encoded independently (`reference`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import one_thread

from .builders import build, save, topk_sae, write_corpus
from .reference import Reference, reference


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def world(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Llama, a random TopK SAE on it (48 latents, k=5), another one, and a corpus."""
    root = tmp_path_factory.mktemp("index_world")
    return {
        "model": tiny_model_dir,
        "sae": save(topk_sae(tiny_model_dir), root / "run" / "sae"),
        "other_sae": save(topk_sae(tiny_model_dir, seed=1), root / "other" / "sae"),
        "corpus": write_corpus(root / "corpus.jsonl"),
        "root": root,
    }


@pytest.fixture(scope="session")
def built(world: dict[str, Path]) -> Path:
    """The text index of `world`'s SAE on the corpus's first 600 tokens (read-only)."""
    out = world["root"] / "run" / "index"
    with one_thread():
        build([world["sae"]], [out], world["corpus"], batch_size=1)
    return out


@pytest.fixture(scope="session")
def ref(world: dict[str, Path]) -> Reference:
    """The same 600 tokens encoded without the index code (read-only)."""
    with one_thread():
        return reference(world["model"], world["sae"], world["corpus"], tokens=600, context_len=24)
