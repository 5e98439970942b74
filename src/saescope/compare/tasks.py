"""Sparse-probing tasks that exist offline: labelled positions of real texts.

    task = code_vs_prose(tokenizer, settings)
    task.sequences[item.text], item.positions, item.label     # for item in task.items

- `code_vs_prose` (per document): the built-in corpus's Python sources against its prose
  (reference topics, manuals, text files, docstrings), each document's first `context_len` tokens;
- `in_string` (per token): tokens of Python sources inside a string literal against tokens of code
  (neither string nor comment), by Python's own tokenizer, from a fifth as many files as
  `documents`;
- `script` (per document): the dominant Unicode script of each document of a corpus (the SAE's own
  by default); a corpus with one script gives no task (say so: a corpus that is all Latin cannot
  test this);
- `first_letter` (per token): letter-only vocabulary tokens in the first-letter prompt
  (`first_letter`), labelled by their first letter;
- `labelled_texts` (per document): a user's JSONL, one `{"text": …, "label": …}` per line.

A per-document item pools its positions (every token but BOS); a per-token item is one position.
A task that cannot be built says why in `reason` (its items then empty) rather than inventing data.

This module knows nothing about SAEs, probes or models (a tokenizer only).
"""

from __future__ import annotations

import io
import json
import random
import tokenize
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..builtin_corpus import code_texts, prose_texts
from ..config import CorpusSettings
from ..config.compare import AbsorptionSettings, ProbingSettings
from ..data import iter_documents
from ..errors import SaescopeError
from ..tokens import bos_offset, encode
from .first_letter import sample_words, word_prompts

MIN_CHARS = 200
"""Documents shorter than this are not read (too few tokens to pool)."""
SCRIPT_SHARE = 0.8
"""A document's script is the one holding at least this share of its letters (else none)."""
LABELLED_FIELDS = ("text", "label")
"""The fields of a line of a labelled JSONL."""


class ProbeItem(NamedTuple):
    """One labelled example: positions of one sequence."""

    text: int
    """Which sequence of the task."""
    positions: tuple[int, ...]
    """Its positions (pooled when several)."""
    label: str
    """Its class."""


class ProbingTask(NamedTuple):
    """Labelled positions of token sequences (see the module docstring)."""

    name: str
    """The task's name."""
    unit: Literal["document", "token"]
    """What one example is."""
    description: str
    """What is labelled, and from where."""
    sequences: list[list[int]]
    """Token ids (BOS first where the tokenizer has one)."""
    items: list[ProbeItem]
    """The labelled examples."""
    reason: str = ""
    """Why the task has no items ("" when it has)."""


def documents_of(texts: Iterable[str], tokenizer: Any, count: int, context_len: int) -> list[list[int]]:
    """The first `context_len` tokens of up to `count` texts of at least `MIN_CHARS` characters."""
    out = []
    for text in texts:
        if len(text) >= MIN_CHARS:
            out.append(encode(tokenizer, text[: context_len * 12])[:context_len])
            if len(out) == count:
                break
    return out


def pooled(tokenizer: Any, sequence: Sequence[int]) -> tuple[int, ...]:
    """Every position of a sequence but BOS."""
    return tuple(range(bos_offset(tokenizer, sequence), len(sequence)))


def sampled(items: Sequence[Any], n: int, seed: int) -> list[Any]:
    """A seeded sample of `n` items (all when there are fewer), in their order."""
    if len(items) <= n:
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in chosen]


def document_task(
    name: str, description: str, tokenizer: Any, labelled: Sequence[tuple[list[int], str]]
) -> ProbingTask:
    """A per-document task from (token ids, label) pairs."""
    sequences = [ids for ids, _ in labelled]
    items = [ProbeItem(i, pooled(tokenizer, ids), label) for i, (ids, label) in enumerate(labelled)]
    items = [item for item in items if item.positions]
    return ProbingTask(name, "document", description, sequences, items)


# ----- code against prose --------------------------------------------------------------------------
def code_vs_prose(tokenizer: Any, settings: ProbingSettings) -> ProbingTask:
    """Built-in Python sources against built-in prose, one example per document."""
    half = settings.documents // 2
    prose = sampled(
        documents_of((t.text for t in prose_texts()), tokenizer, 3 * half, settings.context_len),
        half,
        settings.seed,
    )
    code = sampled(
        documents_of((t.text for t in code_texts()), tokenizer, 3 * half, settings.context_len),
        half,
        settings.seed,
    )
    labelled = [(ids, "prose") for ids in prose] + [(ids, "code") for ids in code]
    first = f"first {settings.context_len} tokens, mean-pooled"
    description = f"built-in corpus documents ({first}): Python source vs prose"
    return document_task("code_vs_prose", description, tokenizer, labelled)


# ----- inside strings against code ----------------------------------------------------------------
STRING_TYPES = {tokenize.STRING} | {
    getattr(tokenize, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, name)
}


def python_spans(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(string literal, comment) character spans of Python source (empty when it does not tokenize)."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    strings, comments = [], []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            span = (starts[tok.start[0] - 1] + tok.start[1], starts[tok.end[0] - 1] + tok.end[1])
            if tok.type in STRING_TYPES:
                strings.append(span)
            elif tok.type == tokenize.COMMENT:
                comments.append(span)
    except (tokenize.TokenError, SyntaxError, IndexError):
        return [], []
    return strings, comments


def inside(span: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    return any(a <= span[0] and span[1] <= b for a, b in spans)


def overlaps(span: tuple[int, int], spans: Sequence[tuple[int, int]]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in spans)


def token_labels(text: str, offsets: Sequence[tuple[int, int]]) -> list[str | None]:
    """`string`, `code` or None (comment, whitespace, or straddling) for each token of `text`."""
    strings, comments = python_spans(text)
    if not strings:
        return [None] * len(offsets)
    out: list[str | None] = []
    for span in offsets:
        if not text[span[0] : span[1]].strip():
            out.append(None)
        elif inside(span, strings):
            out.append("string")
        elif not overlaps(span, strings) and not overlaps(span, comments):
            out.append("code")
        else:
            out.append(None)
    return out


def in_string(tokenizer: Any, settings: ProbingSettings) -> ProbingTask:
    """Tokens inside Python string literals against code tokens, one example per token."""
    sequences: list[list[int]] = []
    items: list[ProbeItem] = []
    files = (t.text for t in code_texts() if len(t.text) >= MIN_CHARS)
    for text in islice(files, max(1, settings.documents // 5)):
        encoded = tokenizer(
            text[: settings.context_len * 12], add_special_tokens=False, return_offsets_mapping=True
        )
        ids = [int(i) for i in encoded["input_ids"]][: settings.context_len - 1]
        offsets = [tuple(o) for o in encoded["offset_mapping"]][: len(ids)]
        labels = token_labels(text, offsets)
        bos = [int(tokenizer.bos_token_id)] if tokenizer.bos_token_id is not None else []
        index = len(sequences)
        sequences.append(bos + ids)
        items += [
            ProbeItem(index, (len(bos) + p,), label) for p, label in enumerate(labels) if label is not None
        ]
    by_class = {label: [i for i in items if i.label == label] for label in ("string", "code")}
    chosen = [
        item for label in by_class for item in sampled(by_class[label], settings.per_class, settings.seed)
    ]
    description = (
        "tokens of built-in Python sources: inside a string literal vs code (not string, not comment)"
    )
    return ProbingTask("in_string", "token", description, sequences, chosen)


# ----- script ---------------------------------------------------------------------------------------
def script_of(text: str) -> str | None:
    """The Unicode script holding `SCRIPT_SHARE` of the letters of `text` (`LATIN`, `CYRILLIC`,
    `CJK`, …; the first word of each letter's Unicode name), None when none does or it has few."""
    if text.isascii():
        letters = sum(c.isalpha() for c in text)
        return "LATIN" if letters >= 20 else None
    counts = Counter(unicodedata.name(c, "?").split(" ")[0] for c in text if c.isalpha())
    total = sum(counts.values())
    if total < 20:
        return None
    name, count = counts.most_common(1)[0]
    return name if count >= SCRIPT_SHARE * total else None


def script(tokenizer: Any, settings: ProbingSettings, corpus: CorpusSettings) -> ProbingTask:
    """Documents of `corpus` labelled by their dominant script (no task when it has one script)."""
    read: list[tuple[str, str]] = []
    documents = iter_documents(corpus)
    for document in islice(documents, settings.documents * 10):
        found = script_of(document.text[: settings.context_len * 12])
        if found is not None:
            read.append((document.text, found))
    counts = Counter(label for _, label in read)
    kept = {label for label, n in counts.items() if n >= settings.min_per_class}
    description = f"documents of the corpus {corpus.dataset} labelled by their dominant Unicode script"
    if len(kept) < 2:
        found_text = ", ".join(f"{label}: {n}" for label, n in counts.most_common()) or "none"
        reason = (
            f"the corpus {corpus.dataset} has fewer than two scripts with {settings.min_per_class} documents "
            f"among the {len(read)} read ({found_text})"
        )
        return ProbingTask("script", "document", description, [], [], reason)
    per_script = {
        label: sampled([t for t, s in read if s == label], settings.per_class, settings.seed)
        for label in sorted(kept)
    }
    labelled = [
        (encode(tokenizer, text[: settings.context_len * 12])[: settings.context_len], label)
        for label, texts in per_script.items()
        for text in texts
    ]
    return document_task("script", description, tokenizer, labelled)


# ----- first letter ----------------------------------------------------------------------------------
def first_letter_task(tokenizer: Any, settings: AbsorptionSettings) -> ProbingTask:
    """Letter-only vocabulary tokens in the first-letter prompt, labelled by their first letter."""
    try:
        sample = sample_words(
            tokenizer, settings.words, settings.icl_examples, settings.min_words, settings.seed
        )
    except SaescopeError as e:
        return ProbingTask("first_letter", "token", "letter-only vocabulary tokens", [], [], str(e))
    prompts = word_prompts(tokenizer, sample.probed, sample.examples, settings.context_len)
    items = [
        ProbeItem(i, (p,), w.letter)
        for i, (positions, words) in enumerate(zip(prompts.positions, prompts.words))
        for p, w in zip(positions, words)
    ]
    description = (
        f"{len(items)} letter-only vocabulary tokens (of {sample.vocabulary}) in the first-letter prompt, "
        "labelled by their first letter"
    )
    return ProbingTask("first_letter", "token", description, prompts.sequences, items)


# ----- a user's labelled texts --------------------------------------------------------------------------
def read_labelled(path: Path) -> Iterator[tuple[str, str]]:
    """(text, label) of each line of a labelled JSONL; SaescopeError naming the line otherwise."""
    if not path.is_file():
        raise SaescopeError(f"labelled texts {path} not found")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except ValueError:
                raise SaescopeError(f"{where} is not valid JSON") from None
            if not isinstance(record, dict):
                raise SaescopeError(f"{where} is not a JSON object")
            unknown = sorted(set(record) - set(LABELLED_FIELDS))
            if unknown:
                raise SaescopeError(
                    f"{where} has the unknown field {unknown[0]!r}; a line holds only 'text' and 'label'"
                )
            missing = [k for k in LABELLED_FIELDS if k not in record]
            if missing:
                raise SaescopeError(f"{where} has no {missing[0]!r} field")
            text, label = record["text"], record["label"]
            if not isinstance(text, str) or not text.strip():
                raise SaescopeError(f"{where}: 'text' must be non-empty text")
            if not isinstance(label, (str, int, bool)):
                raise SaescopeError(f"{where}: 'label' must be a string, integer or boolean")
            yield text, str(label)


def labelled_texts(tokenizer: Any, path: Path, settings: ProbingSettings) -> ProbingTask:
    """A user's JSONL of labelled texts, one example per text (at least two classes)."""
    read = list(read_labelled(path))
    classes = Counter(label for _, label in read)
    if len(classes) < 2:
        only = next(iter(classes), "none")
        raise SaescopeError(f"{path} has one class ({only!r}, {len(read)} texts): probing needs at least two")
    labelled = [(encode(tokenizer, text)[: settings.context_len], label) for text, label in read]
    description = f"the labelled texts of {path} (first {settings.context_len} tokens, mean-pooled)"
    return document_task("labelled", description, tokenizer, labelled)


__all__ = [
    "LABELLED_FIELDS",
    "ProbeItem",
    "ProbingTask",
    "code_vs_prose",
    "first_letter_task",
    "in_string",
    "labelled_texts",
    "python_spans",
    "read_labelled",
    "script",
    "script_of",
    "token_labels",
]
