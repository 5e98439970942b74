"""Constructed latents whose truth is known, and a scripted language model that plays by the rules.

`token_latent(token)` builds a `LatentRecord` for a latent that fires exactly on one token: random
windows over a small code-like vocabulary, the token inserted into the activating ones with a
random activation, never present in the non-activating ones. Other vocabulary tokens (" the",
"(" …) appear at the same rate in both, so an explanation naming them is worth chance.

`ScriptedLLM` reads the prompts saescope sends and answers deterministically from the word the
explanation names (the first quoted string, else the last word): detection → 1 for excerpts
containing it; fuzzing → 1 when every marked span is it; simulation → 10 on it, 0 elsewhere;
explanation → the most frequent marked span. It counts requests, like a server would.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence

from saescope.example import Example
from saescope.interpret.clients.base import ChatRequest, ChatResponse
from saescope.interpret.prompts import DETECT_SYSTEM, EXPLAIN_SYSTEM, FUZZ_SYSTEM, SIMULATE_SYSTEM
from saescope.interpret.records import LatentRecord

VOCAB = (
    " the",
    " x",
    " y",
    " self",
    " return",
    "(",
    ")",
    ":",
    "\n",
    " =",
    " if",
    " for",
    " in",
    " 1",
    " a",
    " b",
)


def _window(rng: random.Random, length: int, token: str | None, n_insert: int, doc: int) -> Example:
    tokens = [rng.choice(VOCAB) for _ in range(length)]
    acts = [0.0] * length
    if token is not None:
        for i in rng.sample(range(length), n_insert):
            tokens[i] = token
            acts[i] = round(rng.uniform(1.0, 10.0), 3)
    best = max(range(length), key=lambda i: acts[i])
    return Example(tuple(tokens), tuple(acts), doc, best, acts[best], focus=best)


def token_latent(
    token: str,
    latent: int = 0,
    *,
    n_train: int = 40,
    n_held_out: int = 40,
    n_background: int = 20,
    length: int = 16,
    seed: int = 0,
) -> LatentRecord:
    """A latent firing exactly on `token` (activations 1–10)."""
    rng = random.Random(seed)

    def active(n: int, start: int) -> tuple[Example, ...]:
        return tuple(_window(rng, length, token, rng.randint(1, 2), start + i) for i in range(n))

    def inactive(n: int, start: int) -> tuple[Example, ...]:
        return tuple(_window(rng, length, None, 0, start + i) for i in range(n))

    train = active(n_train, 0)
    held_out = active(n_held_out, 1000) + inactive(n_held_out, 2000)
    background = inactive(n_background, 3000)
    count = sum(1 for ex in train + held_out for a in ex.activations if a > 0)
    top = max(ex.max_activation for ex in train)
    return LatentRecord(latent, train, held_out, background, frequency=0.01, count=count, max_activation=top)


def named_word(explanation: str) -> str:
    """The word an explanation names: its first quoted string, else its last word."""
    quoted = re.findall(r'"([^"]+)"', explanation)
    return (quoted[0] if quoted else explanation.split()[-1]).strip()


def _explanation_in(user: str) -> str:
    return user.split("\n", 1)[0].removeprefix("Explanation: ")


def _excerpts(user: str) -> list[str]:
    return [json.loads(m) for m in re.findall(r"^\d+\. (\".*\")$", user, flags=re.MULTILINE)]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


class ScriptedLLM:
    """A deterministic fake language model (see the module docstring)."""

    def __init__(self, probabilities: bool = False) -> None:
        self.requests: list[ChatRequest] = []
        self.probabilities = probabilities

    def answer(self, request: ChatRequest) -> str:
        system = request.messages[0].content
        user = request.messages[-1].content
        if system == EXPLAIN_SYSTEM:
            spans = Counter(re.findall(r"<<(.*?)>>", user))
            word = spans.most_common(1)[0][0] if spans else "nothing"
            return f'Looking at these... {{"explanation": "the token \\"{word}\\"", "confidence": 0.8}}'
        word = named_word(_explanation_in(user))
        if system == DETECT_SYSTEM:
            yes = [word in _words(text) for text in _excerpts(user)]
            return json.dumps([(0.9 if y else 0.2) if self.probabilities else int(y) for y in yes])
        if system == FUZZ_SYSTEM:
            marked = [re.findall(r"<<(.*?)>>", text) for text in _excerpts(user)]
            return json.dumps([int(bool(m) and all(w == word for s in m for w in s.split())) for m in marked])
        if system == SIMULATE_SYSTEM:
            tokens = json.loads(user.split("Tokens: ", 1)[1].split("\n", 1)[0])
            return json.dumps([10 if t.strip() == word else 0 for t in tokens])
        return "I do not understand."

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(self.answer(request), 10, 5)

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        return [await self.chat(r) for r in requests]
