"""Shared pytest fixtures: tiny offline models and tokenizers (see `builders.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import GPT2LMHeadModel, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.builders import save_tiny_model, tiny_gpt2, tiny_llama, tiny_tokenizer


@pytest.fixture
def tiny_tok() -> PreTrainedTokenizerFast:
    """A fresh tiny byte-level BPE tokenizer with `<bos>`, `<eos>`, `<pad>`."""
    return tiny_tokenizer()


@pytest.fixture
def tiny_llama_model() -> LlamaForCausalLM:
    """A fresh 4-layer, 32-wide random-init Llama (seed 0)."""
    return tiny_llama()


@pytest.fixture
def tiny_gpt2_model() -> GPT2LMHeadModel:
    """A fresh 3-layer, 32-wide random-init GPT-2 (seed 0)."""
    return tiny_gpt2()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local Hugging Face folder (tiny Llama + tokenizer) that `load_model` accepts. Read-only: copy it
    before changing anything in it."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model") / "tiny-llama")
