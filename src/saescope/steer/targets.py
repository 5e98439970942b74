"""Which tokens measure a steering effect: the words the user names, or the latents' own top tokens.

- named (`--target than more`): each word must be exactly one token (`saescope.tokens.single_token`),
  so that "log p(target)" is the probability of that word coming next, not of its first fragment;
- default: the largest entries of the steered latents' logit effect (`saescope.readout`: their
  summed decoder directions read through the final norm and the unembedding, the numbers the
  latent index and the dashboards show), keeping only whole-word tokens the tokenizer gives back
  unchanged (`saescope.tokens.is_whole_word`) and after which the model expects a new word
  (`ends_words`: a word-initial fragment such as `' strugg'` round-trips but is followed by the rest
  of its word) — fragments such as `'P'` or `'ultan'` follow almost anything and measure nothing.
  The first `TOP_TOKENS` such words among the top `DEPTH`.

The result says where its tokens came from; every report repeats it. This module knows nothing
about generation or hooks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import SaescopeError
from ..readout import direct_logits
from ..sae.base import SparseAutoencoder
from ..tokens import decode_each, is_whole_word, single_token

TOP_TOKENS = 5
"""Whole-word tokens measured when no target is named."""
DEPTH = 1000
"""How far down the latents' logit-effect ranking whole words are looked for."""
CANDIDATE_WORDS = 4 * TOP_TOKENS
"""Whole-word tokens (by logit effect) checked with the model for being complete words."""
NEXT_WORD = 0.5
"""A token ends a word when the model, reading it after one of `CONTEXTS`, gives at least this
probability to a next token that starts a new word (space, punctuation or line break first)."""
CONTEXTS = ("The", "This is about")
"""Short texts the candidate token is read after (a fragment needs its word's rest after either)."""


class Targets(NamedTuple):
    """The tokens whose log-probability measures a steering effect."""

    ids: list[int]
    """Their token ids."""
    tokens: list[str]
    """Each decoded."""
    source: str
    """Where they came from (named, or which latents' logit effects)."""

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "ids": self.ids, "source": self.source}


def top_logit_tokens(model: Any, sae: SparseAutoencoder, latents: Sequence[int], n: int = DEPTH) -> list[int]:
    """The `n` tokens whose logits the latents' summed decoder directions raise most, best first."""
    direction = sae.W_dec[list(latents)].detach().float().sum(0, keepdim=True)
    effect = direct_logits(model, direction)[0]
    return effect.topk(min(n, effect.numel())).indices.tolist()


@functools.lru_cache(maxsize=4)
def word_starts(tokenizer: Any, vocab: int) -> Tensor:
    """[vocab] bool: which tokens start a new word (space, punctuation or line break first);
    computed once per tokenizer (decoding the whole vocabulary takes ~0.5 s)."""
    pieces = decode_each(tokenizer, range(min(vocab, len(tokenizer))))
    starts = torch.zeros(vocab, dtype=torch.bool)
    starts[: len(pieces)] = torch.tensor([bool(p) and not p[0].isalnum() for p in pieces])
    return starts


@torch.no_grad()
def ends_words(model: Any, tokenizer: Any, tokens: Sequence[int]) -> list[bool]:
    """For each token: does the model, reading it after one of `CONTEXTS`, expect a new word next
    (see NEXT_WORD)? A word-initial fragment (`' strugg'`) is followed by the rest of its word."""
    if not tokens:
        return []
    weight = model.get_output_embeddings().weight
    starts = word_starts(tokenizer, weight.shape[0])
    device = weight.device
    best = torch.zeros(len(tokens))
    for context in CONTEXTS:
        prefix = [int(i) for i in tokenizer(context, add_special_tokens=False)["input_ids"]]
        ids = torch.tensor([[*prefix, t] for t in tokens], device=device)
        probs = model(input_ids=ids, use_cache=False).logits[:, -1].float().softmax(-1).cpu()
        best = torch.maximum(best, probs[:, starts].sum(-1))
    return (best >= NEXT_WORD).tolist()


def whole_word_targets(
    model: Any, tokenizer: Any, sae: SparseAutoencoder, latents: Sequence[int], n: int = TOP_TOKENS
) -> Targets:
    """The latents' first `n` whole-word tokens by logit effect (see the module docstring)."""
    candidates = []
    for token in top_logit_tokens(model, sae, latents):
        if is_whole_word(tokenizer, token):
            candidates.append(token)
            if len(candidates) == CANDIDATE_WORDS:
                break
    names = ", ".join(str(i) for i in latents)
    if not candidates:
        raise SaescopeError(
            f"no whole-word token among the top {DEPTH} logit effects of latent {names}; "
            "name the words to measure with --target"
        )
    complete = ends_words(model, tokenizer, candidates)
    found = [t for t, ok in zip(candidates, complete) if ok][:n]
    source = f"the top logit effects of latent {names} that are whole words"
    if not found:  # the model reads none as a finished word: say so rather than guess
        found = candidates[:n]
        source += " (the model did not read any of them as a complete word: fragments are possible)"
    return Targets(found, decode_each(tokenizer, found), source)


def named_targets(tokenizer: Any, words: Sequence[str]) -> Targets:
    """The named words, each exactly one token (a leading space is what a word inside a sentence
    has; ' than' and 'than' are different tokens)."""
    ids = [single_token(tokenizer, word, "--target") for word in words]
    return Targets(ids, decode_each(tokenizer, ids), "named with --target")


def choose_targets(
    model: Any,
    tokenizer: Any,
    sae: SparseAutoencoder,
    latents: Sequence[int],
    words: Sequence[str] = (),
    ids: Sequence[int] = (),
) -> Targets:
    """Token `ids` when given, else the named `words`, else the latents' whole-word tokens."""
    if ids:
        chosen = [int(i) for i in ids]
        return Targets(chosen, decode_each(tokenizer, chosen), "given as token ids")
    if words:
        return named_targets(tokenizer, words)
    return whole_word_targets(model, tokenizer, sae, latents)


__all__ = [
    "DEPTH",
    "TOP_TOKENS",
    "Targets",
    "choose_targets",
    "ends_words",
    "named_targets",
    "top_logit_tokens",
    "whole_word_targets",
]
