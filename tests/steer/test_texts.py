"""The texts users hand over: line files and corpora, chat templates, BOS, empty texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saescope.errors import SaescopeError
from saescope.steer.texts import Text, encode_all, read_texts
from saescope.tokens import encode

TEMPLATE = "{% for m in messages %}<bos>{{ m['role'] }}: {{ m['content'] }}<eos>{% endfor %}<bos>assistant:"


def test_texts_come_from_line_files_and_corpora(tmp_path: Path) -> None:
    lines = tmp_path / "pos.txt"
    lines.write_text("one text\n\n  \nanother, with a comma\n")
    assert read_texts(lines) == [Text("one text"), Text("another, with a comma")]
    records = tmp_path / "pos.jsonl"
    records.write_text(json.dumps({"text": "Paris is big", "entity": "Paris"}) + "\n")
    assert read_texts(records, substring_field="entity") == [Text("Paris is big", "Paris")]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(SaescopeError, match="holds no texts"):
        read_texts(tmp_path / "empty.txt")
    with pytest.raises(SaescopeError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(SaescopeError, match="one text per line"):
        read_texts(lines, substring_field="entity")


def test_prompts_are_plain_after_bos_or_wrapped_in_the_chat_template(tiny_tok) -> None:  # type: ignore[no-untyped-def]
    plain = tiny_tok("The cat", add_special_tokens=False)["input_ids"]
    assert encode(tiny_tok, "The cat") == [tiny_tok.bos_token_id, *plain]
    assert encode(tiny_tok, "The cat", prepend_bos=False) == plain
    with pytest.raises(SaescopeError, match="no chat template; drop --chat"):
        encode(tiny_tok, "The cat", chat=True)
    tiny_tok.chat_template = TEMPLATE
    chat = encode(tiny_tok, "The cat", chat=True)
    assert tiny_tok.decode(chat) == "<bos>user: The cat<eos><bos>assistant:"
    with pytest.raises(SaescopeError, match="prompt 1 is empty"):
        encode_all(tiny_tok, ["fine", "  "])
