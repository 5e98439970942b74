"""Reading JSON out of what a language model wrote, tolerantly but without guessing.

Models wrap their JSON in code fences, put reasoning before it and remarks after it, and write
Python-flavoured JSON (single quotes, trailing commas, `True`). `find_json` takes the last
balanced `{…}` or `[…]` in the text (fenced blocks first) that parses as JSON, or after those
repairs as a Python literal (`ast.literal_eval`: data only, never code). The readers on top of it —
`read_explanation`, `read_labels`, `read_activations` — check the shape they need and return an
error message instead of a value when the answer does not have it: a failure is recorded, never
an answer invented.

This module knows nothing about prompts, clients or scores.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any, Literal, NamedTuple

Kind = Literal["object", "list"]

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_JSON_WORDS = {"true": "True", "false": "False", "null": "None"}
_MAX_CANDIDATE = 50_000
"""Longest span tried (a bound on the work `ast.literal_eval` may do)."""


def _matching_close(text: str, start: int) -> int | None:
    """Index of the bracket closing the one at `start` (strings in either quote respected), or None."""
    pairs = {"{": "}", "[": "]"}
    stack = [pairs[text[start]]]
    quote: str | None = None
    i = start + 1
    while i < len(text) and i - start < _MAX_CANDIDATE:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'" and (ch == '"' or not text[i - 1].isalnum()):  # an apostrophe inside a word is text
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch in "}]":
            if ch != stack.pop():
                return None
            if not stack:
                return i
        i += 1
    return None


def _spans(text: str, kind: Kind) -> list[str]:
    """Balanced spans of `kind` in `text`, the one ending last (and longest) first."""
    opener = "{" if kind == "object" else "["
    found = []
    for start, ch in enumerate(text):
        if ch == opener:
            end = _matching_close(text, start)
            if end is not None:
                found.append((end, end - start, text[start : end + 1]))
    return [s for _, _, s in sorted(found, reverse=True)]


def _python_literal(span: str) -> Any:
    words = re.sub(r"\b(true|false|null)\b", lambda m: _JSON_WORDS[m.group(1)], span)
    return ast.literal_eval(words)


def _load(span: str) -> Any:
    """`span` as JSON, or after repairs; raises ValueError when nothing works."""
    for attempt in (span, _TRAILING_COMMA.sub(r"\1", span)):
        try:
            return json.loads(attempt)
        except ValueError:
            pass
    try:
        return _python_literal(span)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("not JSON") from None


def find_json(text: str, kind: Kind = "object") -> Any:
    """The last JSON object (or list) in `text`; ValueError when there is none.

    Fenced code blocks are searched first (the last one first), then the whole text.
    """
    wanted = dict if kind == "object" else list
    sources = [*reversed(_FENCE.findall(text)), text]
    for source in sources:
        for span in _spans(source, kind):
            try:
                value = _load(span)
            except ValueError:
                continue
            if isinstance(value, wanted):
                return value
    raise ValueError(f"no JSON {kind} found in the answer")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            out = float(value.strip().rstrip("%"))
        except ValueError:
            return None
        return out / 100 if value.strip().endswith("%") else out
    return None


class ParsedExplanation(NamedTuple):
    """What `read_explanation` found."""

    text: str
    """The explanation ("" on failure)."""
    confidence: float | None
    """The model's confidence in [0, 1], if it gave a readable one."""
    error: str | None
    """Why the answer could not be read (None on success)."""


def read_explanation(answer: str) -> ParsedExplanation:
    """The `{"explanation": ..., "confidence": ...}` object at the end of `answer`."""
    try:
        value = find_json(answer, "object")
    except ValueError as e:
        return ParsedExplanation("", None, str(e))
    fields = {str(k).strip().lower(): v for k, v in value.items()}
    text = fields.get("explanation")
    if not isinstance(text, str) or not text.strip():
        return ParsedExplanation("", None, "the JSON answer has no non-empty 'explanation'")
    confidence = _number(fields.get("confidence"))
    if confidence is not None and 1 < confidence <= 100:  # a percentage
        confidence /= 100
    if confidence is not None and not 0 <= confidence <= 1:
        confidence = None
    return ParsedExplanation(" ".join(text.split()), confidence, None)


def _list_in(answer: str) -> list[Any]:
    """The last JSON list in `answer`, or the single list inside a JSON object (`{"answers": [...]}`)."""
    try:
        return list(find_json(answer, "list"))
    except ValueError:
        pass
    try:
        obj = find_json(answer, "object")
    except ValueError:
        obj = {}
    lists = [v for v in obj.values() if isinstance(v, list)]
    if len(lists) != 1:
        raise ValueError("no JSON list found in the answer")
    return lists[0]


def read_numbers(answer: str, n: int, low: float, high: float) -> tuple[list[float], str | None]:
    """A list of exactly `n` numbers in [`low`, `high`] from `answer`; ([], error) otherwise."""
    try:
        values = _list_in(answer)
    except ValueError as e:
        return [], str(e)
    if len(values) != n:
        return [], f"expected {n} numbers, got {len(values)}"
    numbers = [_number(v) for v in values]
    if any(x is None for x in numbers):
        return [], "the list holds something other than numbers"
    clean = [float(x) for x in numbers if x is not None]
    if any(not low <= x <= high for x in clean):
        return [], f"a number is outside [{low:g}, {high:g}]"
    return clean, None


def read_labels(answer: str, n: int) -> tuple[list[float], str | None]:
    """`n` answers in [0, 1] (1: fires / correct; fractions are probabilities)."""
    return read_numbers(answer, n, 0.0, 1.0)


def read_activations(answer: str, n: int) -> tuple[list[float], str | None]:
    """`n` predicted activations on the 0–10 scale."""
    return read_numbers(answer, n, 0.0, 10.0)
