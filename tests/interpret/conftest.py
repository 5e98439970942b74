"""Fixtures of the interpretation tests that need a latent index: a tiny one, built once.

`built_index` is the text index of a random TopK SAE (48 latents, k=5) on the tiny Llama over 600
tokens of short random-word documents (the index tests' own builders) — a few of its latents are
dead, a few fire only a handful of times, most fire dozens of times. Read-only: `index_dir` is a
fresh copy per test, for tests that store results in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import one_thread
from tests.index.builders import build, save, topk_sae, write_corpus


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def built_index(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny index (read-only)."""
    root = tmp_path_factory.mktemp("interpret_world")
    sae = save(topk_sae(tiny_model_dir), root / "run" / "sae")
    corpus = write_corpus(root / "corpus.jsonl")
    out = root / "run" / "index"
    with one_thread():
        build([sae], [out], corpus, batch_size=1)
    return out


@pytest.fixture
def index_dir(built_index: Path, tmp_path: Path) -> Path:
    """A fresh copy of the tiny index, to store results in."""
    return Path(shutil.copytree(built_index, tmp_path / "index"))
