"""The first-letter task, offline: letter-only tokens of the vocabulary read in an in-context prompt.

    words = letter_tokens(tokenizer)                         # every letter-only token, with its letter
    prompts = word_prompts(tokenizer, probed, examples, 256)
    prompts.sequences[i], prompts.positions[i], prompts.words[i]

A *word* is a vocabulary token whose text is ASCII letters, optionally after one leading space
(SAEBench's `get_alpha_tokens`); its label is its first letter, lower-cased. Each prompt opens
with BOS (when the tokenizer has one) and a few solved lines, `WORD has the first letter: W`,
then packs as many probed words' lines as fit in `context_len` tokens. Each line is assembled
from token ids — the word's own id, then the encoded ` has the first letter:`, the answer and a
newline — so the word is exactly that one token however the tokenizer would merge the text, and
its activation is read at that token, before the answer (Chanin et al. 2024; SAEBench reads the
same position with the template `{word} has the first letter:`). Later words see the earlier
lines, answers included, as more in-context examples.

This module knows nothing about models, SAEs or probes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import SaescopeError

LETTERS = "abcdefghijklmnopqrstuvwxyz"
"""The labels, in probe order."""
TEMPLATE = " has the first letter:"
"""What follows the word in each line (SAEBench's template without `{word}`)."""


class Word(NamedTuple):
    """A letter-only vocabulary token."""

    token_id: int
    """Its id."""
    text: str
    """Its text (a leading space kept)."""

    @property
    def letter(self) -> str:
        """Its first letter, lower-cased."""
        return self.text.strip()[0].lower()


class WordPrompts(NamedTuple):
    """Prompts that read words at their own token."""

    sequences: list[list[int]]
    """Token ids of each prompt."""
    positions: list[list[int]]
    """Where each probed word sits in its prompt."""
    words: list[list[Word]]
    """The probed words of each prompt, in the order of `positions`."""


def is_letter_word(text: str) -> bool:
    """ASCII letters only, after at most one leading space."""
    body = text[1:] if text.startswith(" ") else text
    return bool(body) and body.isascii() and body.isalpha()


def letter_tokens(tokenizer: Any) -> list[Word]:
    """Every letter-only token of the vocabulary, by id (special tokens left out)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = sorted(i for i in tokenizer.get_vocab().values() if i not in special)
    texts = tokenizer.batch_decode([[i] for i in ids])
    return [Word(int(i), str(t)) for i, t in zip(ids, texts) if is_letter_word(str(t))]


def encode_piece(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a piece of text (no special tokens)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def line_of(word: Word, template: list[int], answers: dict[str, list[int]], newline: list[int]) -> list[int]:
    """One solved line: word, template, answer, newline."""
    return [word.token_id, *template, *answers[word.letter], *newline]


def word_prompts(
    tokenizer: Any, probed: Sequence[Word], examples: Sequence[Word], context_len: int
) -> WordPrompts:
    """Prompts reading every word of `probed` once (see the module docstring)."""
    template = encode_piece(tokenizer, TEMPLATE)
    answers = {letter: encode_piece(tokenizer, " " + letter.upper()) for letter in LETTERS}
    newline = encode_piece(tokenizer, "\n")
    bos = [int(tokenizer.bos_token_id)] if tokenizer.bos_token_id is not None else []
    head = bos + [t for w in examples for t in line_of(w, template, answers, newline)]
    longest = max((len(line_of(w, template, answers, newline)) for w in probed), default=0)
    if len(head) + longest > context_len:
        raise SaescopeError(
            f"the first-letter prompt's {len(examples)} solved lines take {len(head)} tokens: "
            f"no word fits in {context_len} tokens"
        )
    out = WordPrompts([], [], [])
    sequence, positions, words = list(head), list[int](), list[Word]()
    for word in probed:
        line = line_of(word, template, answers, newline)
        if len(sequence) + len(line) > context_len:
            out.sequences.append(sequence)
            out.positions.append(positions)
            out.words.append(words)
            sequence, positions, words = list(head), list[int](), list[Word]()
        positions.append(len(sequence))
        words.append(word)
        sequence += line
    if words:
        out.sequences.append(sequence)
        out.positions.append(positions)
        out.words.append(words)
    return out


class WordSample(NamedTuple):
    """The words of one first-letter experiment."""

    vocabulary: int
    """Letter-only tokens in the vocabulary."""
    examples: list[Word]
    """Solved lines opening each prompt (never probed)."""
    probed: list[Word]
    """Words read (a seeded sample)."""


def sample_words(tokenizer: Any, words: int, icl_examples: int, min_words: int, seed: int) -> WordSample:
    """A seeded sample of letter-only tokens: `icl_examples` for the prompts' solved lines, up to
    `words` to read; SaescopeError when the vocabulary has fewer than `min_words`."""
    found = letter_tokens(tokenizer)
    needed = max(min_words, icl_examples + 2)
    if len(found) < needed:
        raise SaescopeError(
            f"the tokenizer has {len(found)} letter-only tokens, fewer than the {needed} the first-letter "
            "task needs: not measured"
        )
    rng = random.Random(seed)
    shuffled = list(found)
    rng.shuffle(shuffled)
    examples = shuffled[:icl_examples]
    return WordSample(len(found), examples, shuffled[icl_examples : icl_examples + words])


__all__ = [
    "LETTERS",
    "TEMPLATE",
    "Word",
    "WordPrompts",
    "WordSample",
    "is_letter_word",
    "letter_tokens",
    "sample_words",
    "word_prompts",
]
