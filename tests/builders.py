"""Tiny, offline, seeded models and tokenizers for tests.

`tiny_tokenizer()` is a byte-level BPE (every byte is a token, plus a few merges so that some
tokens span several characters) with `<bos>`, `<eos>` and `<pad>`; built with the `tokenizers`
library, nothing downloaded. `tiny_llama()` and `tiny_gpt2()` are random-init causal LMs over that
vocabulary; `save_tiny_model()` writes a Llama + tokenizer folder that `load_model` accepts;
`random_topk_sae()` is a TopK SAE on such a model whose latents fire on every token;
`torchrun_two_ranks()` runs a saescope command as two CPU ranks.

This module knows nothing about saescope's stages; other tests build on it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from saescope.sae import SAEConfig, SparseAutoencoder, get_architecture

SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>")
# Pairs merged in this order ("Ġ" is the byte-level space): common English pieces, so that tokens
# like "Ġthe" and "Ġcat" cover several characters and substring spans are not trivially one token each.
MERGES = (
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("Ġ", "c"),
    ("a", "t"),
    ("Ġc", "at"),
    ("i", "s"),
    ("Ġ", "is"),
    ("o", "n"),
    ("Ġ", "on"),
    ("Ġ", "a"),
    ("e", "r"),
    ("a", "r"),
    ("Ġ", "P"),
    ("ĠP", "ar"),
    ("ĠPar", "is"),
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fast byte-level BPE tokenizer: 256 bytes + `len(MERGES)` merges + `<bos>`, `<eos>`, `<pad>`."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(MERGES)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def tiny_llama(
    num_layers: int = 4, hidden: int = 32, vocab_size: int | None = None, seed: int = 0
) -> LlamaForCausalLM:
    """A random-init `LlamaForCausalLM` (eval mode) over the tiny tokenizer's vocabulary."""
    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size or len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(num_layers: int = 3, hidden: int = 32, seed: int = 0) -> GPT2LMHeadModel:
    """A random-init `GPT2LMHeadModel` (eval mode) over the tiny tokenizer's vocabulary."""
    tok = tiny_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=hidden,
        n_layer=num_layers,
        n_head=4,
        n_positions=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval()


def save_tiny_model(folder: Path, num_layers: int = 4, hidden: int = 32, seed: int = 0) -> Path:
    """Write a tiny Llama and its tokenizer as a local Hugging Face folder; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_llama(num_layers=num_layers, hidden=hidden, seed=seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside the block: the tests' tensors are tiny, and two threads competing
    with other work on a 2-core machine make every step several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def random_topk_sae(
    model_dir: Path, d_sae: int, k: int, seed: int = 0, scale: float = 8.0, d_in: int = 32
) -> SparseAutoencoder:
    """A TopK SAE on the tiny model's `resid_post:1`: random unit decoder rows, the encoder their
    transpose times `scale`, so that several latents fire on every token."""
    cfg = SAEConfig(
        architecture="topk",
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        model=str(model_dir),
        hookpoint="resid_post:1",
        hookpoint_alias="resid_post:1",
    )
    sae = get_architecture("topk")(cfg)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(d_sae, d_in, generator=gen)
    rows /= rows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(scale * rows.t())
        sae.b_enc.copy_(0.01 * torch.randn(d_sae, generator=gen))
        sae.b_dec.copy_(0.01 * torch.randn(d_in, generator=gen))
    return sae.eval()


def torchrun_two_ranks(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node 2 -m saescope ARGS` on the CPU, finished and
    checked: exit 0 and no traceback."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*command, "-m", "saescope", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc
