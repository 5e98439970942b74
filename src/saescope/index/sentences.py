"""Sentences at token level: where each indexed token's sentence starts.

A sentence ends after a token whose text, without trailing whitespace and closing quotes or
brackets, ends in `.`, `!` or `?`; after a token holding a line break; and at special tokens (BOS,
EOS separators between packed documents). This works on token ids alone, so every token of every
model input gets its sentence without re-tokenising text (`data.iter_sentences` splits strings,
whose boundaries need not fall between tokens). The index stores each token's sentence as the token
key of the sentence's first token.

This module knows nothing about models, SAEs or files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tokens import decode_each

_ENDS_SENTENCE = re.compile(r"""[.!?]["'”’)\]]*$""")


def ends_sentence(text: str) -> bool:
    """Whether a sentence ends after a token with this text (see the module docstring)."""
    return "\n" in text or _ENDS_SENTENCE.search(text.rstrip()) is not None


def tokens_end_sentences(tokenizer: Any, token_ids: Sequence[int]) -> np.ndarray:
    """[n] bool: whether a sentence ends after each of `token_ids` (special tokens always end one)."""
    texts = decode_each(tokenizer, token_ids)
    ends = np.fromiter((ends_sentence(t) for t in texts), dtype=bool, count=len(texts))
    special = set(tokenizer.all_special_ids)
    ends[[i for i, t in enumerate(token_ids) if int(t) in special]] = True
    return ends


def sentence_ends(tokenizer: Any) -> np.ndarray:
    """[vocab] bool: whether a sentence ends after each token id (special tokens always end one)."""
    return tokens_end_sentences(tokenizer, range(len(tokenizer)))


def sentence_starts(token_ids: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For every position of one model input, the position where its sentence starts."""
    ids = np.asarray(token_ids, dtype=np.int64)
    n = len(ids)
    starts_here = np.ones(n, dtype=bool)
    if n > 1:
        previous = ids[:-1]
        known = previous < len(ends)
        starts_here[1:] = np.where(known, ends[np.minimum(previous, len(ends) - 1)], False)
    first = np.where(starts_here, np.arange(n), 0)
    return np.maximum.accumulate(first)


__all__ = ["ends_sentence", "sentence_ends", "sentence_starts", "tokens_end_sentences"]
