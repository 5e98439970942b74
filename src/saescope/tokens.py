"""Text ↔ token ids, one way for every stage.

- `encode`: a text as the model sees it — the user turn of the chat template (instruct models), or
  plain text after BOS when `prepend_bos` and the tokenizer has one, never a second BOS when the
  text already starts with it (as the SAE's training inputs were cut);
- `decode_each`: every token decoded on its own (the token strings examples, queries and pages show);
- `bos_offset`: where the text's own tokens start (1 after a BOS, else 0), so every stage skips BOS
  the same way, by what the first token is;
- `is_whole_word`: whether a token has the shape of a word that the tokenizer gives back unchanged
  — the tokens a steering effect is measured on (fragments such as `'ultan'` or `'P'` are not; a
  word-initial fragment such as `' strugg'` has the shape too, and only a model can tell:
  `saescope.steer.targets.ends_words`).

This module knows nothing about models, SAEs or corpora.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import SaescopeError


def apply_chat(tokenizer: Any, text: str) -> str:
    """`text` as the user turn of the tokenizer's chat template, the assistant's turn opened."""
    if not getattr(tokenizer, "chat_template", None):
        raise SaescopeError("this model's tokenizer has no chat template; drop --chat")
    messages = [{"role": "user", "content": text}]
    return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


def encode(tokenizer: Any, text: str, chat: bool = False, prepend_bos: bool = True) -> list[int]:
    """Token ids of one text (see the module docstring); an empty text is an error."""
    if not text.strip():
        raise SaescopeError("a prompt or text is empty")
    if chat:
        return [int(i) for i in tokenizer(apply_chat(tokenizer, text), add_special_tokens=False)["input_ids"]]
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, int(bos))
    return ids


def bos_offset(tokenizer: Any, token_ids: Sequence[int]) -> int:
    """1 when the first token is the tokenizer's BOS (skipped by every per-token report), else 0."""
    bos = tokenizer.bos_token_id
    return 1 if bos is not None and len(token_ids) > 0 and int(token_ids[0]) == int(bos) else 0


def decode_each(tokenizer: Any, token_ids: Sequence[int]) -> list[str]:
    """Each token decoded on its own, in order."""
    return [str(t) for t in tokenizer.batch_decode([[int(i)] for i in token_ids])]


def is_whole_word(tokenizer: Any, token_id: int) -> bool:
    """Whether the token has the shape of a whole word: it decodes to a space followed by at least
    two letters (as a word inside a sentence does), and encoding that text gives back exactly this
    token (see the module docstring for what the shape cannot tell)."""
    text = decode_each(tokenizer, [token_id])[0]
    word = text[1:]
    if not text.startswith(" ") or len(word) < 2 or not word.isalpha():
        return False
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]] == [int(token_id)]


def single_token(tokenizer: Any, text: str, what: str = "the target") -> int:
    """The id of `text` when it is exactly one token; SaescopeError naming `what` otherwise."""
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if len(ids) != 1:
        pieces = ", ".join(repr(t) for t in decode_each(tokenizer, ids)) or "none"
        raise SaescopeError(f"{what} {text!r} is {len(ids)} tokens ({pieces}), not one")
    return ids[0]


__all__ = ["apply_chat", "bos_offset", "decode_each", "encode", "is_whole_word", "single_token"]
