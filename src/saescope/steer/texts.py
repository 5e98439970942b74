"""The texts a user hands to steer, effects and contrast, read and tokenized one way.

Files: a `.jsonl` or `.parquet` file, or a folder, is read as a corpus (`data.iter_documents`: one
text per record, or per `.txt` file in a folder; `text_field` names the record field and
`substring_field` a per-record substring); any other file (`.txt` included) holds one text per
line, empty lines skipped — as llama3_interpretability_sae's prompt files.

Tokenizing is `saescope.tokens.encode` (chat template, or BOS once before plain text), prompt by
prompt, an empty one named by its number.

This module knows nothing about SAEs, hooks or generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..config import CorpusSettings
from ..data import iter_documents
from ..errors import SaescopeError
from ..tokens import encode

CORPUS_SUFFIXES = (".jsonl", ".parquet")
"""Single files read as corpora (one text per record) rather than one text per line."""


class Text(NamedTuple):
    """One text and, when its record names one, its own substring."""

    text: str
    """The text."""
    substring: str | None = None
    """Its substring (from a record's `substring_field`), if any."""


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a text file, stripped of their line ends."""
    try:
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise SaescopeError(f"{path} does not exist") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise SaescopeError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    lines = [line.rstrip("\r") for line in raw.split("\n")]
    return [line for line in lines if line.strip()]


def read_texts(path: Path, text_field: str = "text", substring_field: str | None = None) -> list[Text]:
    """The texts of a file or folder (see the module docstring); an empty result is an error."""
    path = Path(path)
    if not path.exists():
        raise SaescopeError(f"{path} does not exist")
    if path.is_dir() or path.suffix.lower() in CORPUS_SUFFIXES:
        settings = CorpusSettings(dataset=str(path), text_field=text_field, substring_field=substring_field)
        texts = [Text(doc.text, doc.substring) for doc in iter_documents(settings)]
    else:
        if substring_field is not None:
            raise SaescopeError(f"{path} holds one text per line: it has no field {substring_field!r}")
        texts = [Text(line) for line in read_lines(path)]
    if not texts:
        raise SaescopeError(f"{path} holds no texts")
    return texts


def encode_all(
    tokenizer: Any, texts: list[str], chat: bool = False, prepend_bos: bool = True
) -> list[list[int]]:
    """Token ids of each text; an empty one is named by its number."""
    out = []
    for number, text in enumerate(texts):
        if not text.strip():
            raise SaescopeError(f"prompt {number} is empty")
        out.append(encode(tokenizer, text, chat, prepend_bos))
    return out


__all__ = ["CORPUS_SUFFIXES", "Text", "encode_all", "read_lines", "read_texts"]
