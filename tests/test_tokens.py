"""Text ↔ token ids, one way: BOS once, tokens decoded one by one, whole words, single tokens."""

from __future__ import annotations

import pytest

from saescope.errors import SaescopeError
from saescope.tokens import bos_offset, decode_each, encode, is_whole_word, single_token
from tests.builders import tiny_tokenizer

TOK = tiny_tokenizer()
BOS = TOK.bos_token_id


def test_bos_is_prepended_once() -> None:
    plain = encode(TOK, "The cat is on")
    assert plain[0] == BOS and plain.count(BOS) == 1
    assert encode(TOK, "<bos>The cat is on") == plain  # a text that starts with BOS keeps one
    assert BOS not in encode(TOK, "The cat", prepend_bos=False)
    with pytest.raises(SaescopeError, match="empty"):
        encode(TOK, "   ")


def test_bos_offset_says_where_the_text_starts() -> None:
    assert bos_offset(TOK, encode(TOK, "the cat")) == 1
    assert bos_offset(TOK, encode(TOK, "the cat", prepend_bos=False)) == 0
    assert bos_offset(TOK, []) == 0


def test_each_token_is_decoded_on_its_own() -> None:
    ids = encode(TOK, "The cat is on Paris")
    pieces = decode_each(TOK, ids)
    assert pieces[0] == "<bos>" and "".join(pieces[1:]) == "The cat is on Paris"
    assert len(pieces) == len(ids)


def test_whole_words_are_words_after_a_space_that_round_trip() -> None:
    vocab = TOK.get_vocab()
    assert is_whole_word(TOK, vocab["Ġcat"]) and is_whole_word(TOK, vocab["ĠParis"])
    assert not is_whole_word(TOK, vocab["at"])  # a fragment: no space before it
    assert not is_whole_word(TOK, vocab["ĠP"])  # one letter
    assert is_whole_word(TOK, vocab["Ġis"]) and not is_whole_word(TOK, vocab["is"])
    assert not is_whole_word(TOK, BOS)


def test_single_token_names_what_is_not_one() -> None:
    assert single_token(TOK, " cat") == TOK.get_vocab()["Ġcat"]
    with pytest.raises(SaescopeError, match=r"the target ' cats' is 2 tokens \(' cat', 's'\), not one"):
        single_token(TOK, " cats")
    with pytest.raises(SaescopeError, match="is 0 tokens"):
        single_token(TOK, "", "--target")
