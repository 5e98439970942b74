"""The words sent to a language model: versioned prompt constants and the functions that fill them.

Every prompt's text is a module constant; `PROMPT_VERSION` changes whenever any of them changes,
and is recorded with every explanation and score (a cached answer always belongs to its exact
prompt: the cache key is the full request). Examples are shown with their active tokens marked
`<<like this>>`; explanation prompts can add each example's active tokens with activations
(0–10), and a chain-of-thought variant asks the model to work through the examples — key words,
themes, outliers — before its final JSON answer.

This module knows nothing about clients, parsing or scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..example import Example
from .records import active_tokens, mark_active, mark_tokens, scale_0_10

PROMPT_VERSION = "saescope-interpret-v1"
"""Version of every prompt in this module."""

EXPLAIN_SYSTEM = """\
You are studying one feature of a language model: a direction in its activations that turns on \
for some tokens and stays off for others. You will see text excerpts where the feature turns on; \
the tokens where it is active are marked <<like this>>. Your job is to say, in one short phrase, \
what the feature responds to: a specific token or word, a family of words, a concept, a syntactic \
role, or a pattern in the text just before the marked tokens. Be concrete and brief \
(e.g. "the keyword 'def' that starts a Python function"); do not list the examples, do not \
mention the markers, and say so if the feature seems to respond to more than one thing."""

EXPLAIN_ANSWER = """\
Answer with JSON only, no other text: {"explanation": "<one short phrase>", "confidence": <a number \
from 0 to 1: how well the phrase covers the examples>}"""

EXPLAIN_COT = """\
Before answering, think step by step and write your reasoning down:
1. List the marked tokens and the words just before them that recur across the examples.
2. Group them into one or a few themes (a token, a kind of word, a topic, a syntax, a context).
3. Note the examples that fit no theme (outliers) and whether the surrounding text explains them.
4. Decide which single description covers the most examples, strongest activations first.
Then end your reply with the answer on its own line, as JSON: {"explanation": "<one short phrase>", \
"confidence": <a number from 0 to 1>}"""

DETECT_SYSTEM = """\
You are checking an explanation of a language-model feature. The feature is described by the \
explanation below. For each numbered text excerpt, decide whether the feature is active anywhere \
in it, judging only by the explanation."""

DETECT_ANSWER = """\
Answer with JSON only: a list of {n} numbers, one per excerpt in order, each 1 if the feature is \
active in that excerpt and 0 if not (or a probability between 0 and 1 if you are unsure)."""

FUZZ_SYSTEM = """\
You are checking an explanation of a language-model feature. In each numbered excerpt some tokens \
are marked <<like this>>. For some excerpts the marks show exactly where the feature is active; for \
others the marked tokens were chosen at random. Using the explanation, decide for each excerpt \
whether its marked tokens are ones the explanation describes."""

FUZZ_ANSWER = """\
Answer with JSON only: a list of {n} numbers, one per excerpt in order, each 1 if the marking is \
correct and 0 if it is not (or a probability between 0 and 1 if you are unsure)."""

SIMULATE_SYSTEM = """\
You are simulating a language-model feature from its explanation. Given the explanation and a \
list of tokens, predict the feature's activation on every token on a scale from 0 (off) to 10 \
(its strongest), judging only by the explanation. Most tokens are usually 0."""

SIMULATE_ANSWER = """\
Answer with JSON only: a list of exactly {n} integers from 0 to 10, one per token in order."""


def format_example(example: Example, index: int, fraction: float, show_activations: bool, top: float) -> str:
    """One example as `Example i: text with <<marks>>`, optionally followed by its active tokens
    with activations on a 0–10 scale relative to `top`."""
    lines = [f"Example {index}: {mark_active(example, fraction)}"]
    if show_activations:
        pairs = active_tokens(example, fraction)
        scaled = scale_0_10([a for _, a in pairs], top)
        listed = ", ".join(f"{json.dumps(t.strip() or t)} ({s})" for (t, _), s in zip(pairs, scaled))
        lines.append(f"Active tokens: {listed}")
    return "\n".join(lines)


def explain_prompt(
    examples: Sequence[Example],
    *,
    fraction: float,
    show_activations: bool,
    chain_of_thought: bool,
    top: float,
) -> tuple[str, str]:
    """(system, user) messages asking for an explanation of the feature shown by `examples`."""
    body = "\n\n".join(
        format_example(ex, i + 1, fraction, show_activations, top) for i, ex in enumerate(examples)
    )
    closing = EXPLAIN_COT if chain_of_thought else EXPLAIN_ANSWER
    return EXPLAIN_SYSTEM, f"{body}\n\n{closing}"


def _numbered(texts: Sequence[str]) -> str:
    return "\n".join(f"{i + 1}. {json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(texts))


def detect_prompt(explanation: str, examples: Sequence[Example]) -> tuple[str, str]:
    """(system, user) messages asking which excerpts the feature is active in."""
    body = _numbered([ex.text() for ex in examples])
    user = f"Explanation: {explanation}\n\nExcerpts:\n{body}\n\n{DETECT_ANSWER.format(n=len(examples))}"
    return DETECT_SYSTEM, user


def fuzz_prompt(
    explanation: str, examples: Sequence[Example], masks: Sequence[Sequence[bool]]
) -> tuple[str, str]:
    """(system, user) messages asking whether each excerpt's marked tokens fit the explanation."""
    body = _numbered([mark_tokens(ex.tokens, m) for ex, m in zip(examples, masks)])
    user = f"Explanation: {explanation}\n\nExcerpts:\n{body}\n\n{FUZZ_ANSWER.format(n=len(examples))}"
    return FUZZ_SYSTEM, user


def simulate_prompt(explanation: str, example: Example) -> tuple[str, str]:
    """(system, user) messages asking for a 0–10 activation on each token of `example`."""
    tokens = json.dumps(list(example.tokens), ensure_ascii=False)
    answer = SIMULATE_ANSWER.format(n=len(example.tokens))
    return SIMULATE_SYSTEM, f"Explanation: {explanation}\n\nTokens: {tokens}\n\n{answer}"
