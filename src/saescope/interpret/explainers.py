"""Explainers: from a latent's examples to a short description of what it responds to.

An `Explainer` is anything with a `name` and an async `explain(record) -> Explanation`.

- `LLMExplainer` shows a language model a few activating examples (chosen `top`, `quantiles` or
  `mixed`) with active tokens marked `<<like this>>` — optionally each example's active tokens with
  activations, optionally asking it to reason first (chain of thought) — and reads the
  `{"explanation", "confidence"}` JSON at the end of its answer. An answer without that JSON is a
  failure (`ok=False` with the reason), never a made-up explanation. With `prefill`, the answer
  is begun for the model (`{"explanation": "`) and it continues from there — which keeps a small
  local model to the format (backends that continue a final assistant message: local, Anthropic).
- `StatsExplainer` needs no language model: it reports the tokens, n-grams and preceding tokens
  most over-represented where the latent fires (see `evidence`), e.g.
  `fires on " def" (lift 42×, 120/130 firings), " class" (lift 30×, 8/130 firings); after "("
  (lift 9.0×, 30/130 firings)`,
  with the structured evidence as JSON in `raw`. It is instant, offline and deterministic: the
  baseline every language-model explanation has to beat.

Both work from about 10 firings up and flag `few_examples` below `few_threshold` (20).

This module knows nothing about how explanations are scored, or where records come from.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from .clients.base import LLM, ChatRequest, Message
from .evidence import Evidence, Selection, all_evidence, combined, select_evidence
from .parsing import read_explanation
from .prompts import PROMPT_VERSION, explain_prompt
from .records import DEFAULT_ACTIVE_FRACTION, LatentRecord
from .sampling import Strategy, select_examples

logger = logging.getLogger(__name__)

PREFILL = '{"explanation": "'
"""How a prefilled answer begins."""

FEW_EXAMPLES = 20
"""Below this many firings an explanation is flagged `few_examples`."""

STATS_VERSION = "saescope-stats-v1"
"""Version of the statistics explainer's method and text format."""


class Explanation(NamedTuple):
    """What an explainer says about one latent."""

    latent: int
    """The latent's index."""
    explainer: str
    """Which explainer (`llm`, `stats`, `given`, …)."""
    model: str
    """The language model that wrote it ("" for none)."""
    prompt_version: str
    """Version of the prompt (or method) that produced it."""
    text: str
    """The explanation ("" on failure)."""
    confidence: float | None
    """The explainer's own confidence in [0, 1], when it gave one."""
    ok: bool
    """Whether an explanation was produced."""
    error: str | None
    """Why not (None when `ok`)."""
    n_examples: int
    """Examples the explainer read."""
    few_examples: bool
    """Whether the latent fired fewer than `few_threshold` times: read the explanation with care."""
    raw: str
    """The model's full answer, or the statistics explainer's evidence as JSON."""

    def to_dict(self) -> dict[str, Any]:
        """JSON values."""
        return self._asdict()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Explanation:
        """The inverse of `to_dict`."""
        return cls(**{k: d[k] for k in cls._fields})


def given_explanation(text: str, latent: int = -1) -> Explanation:
    """An explanation written by someone else (a baseline text, a human label) in the same shape."""
    return Explanation(latent, "given", "", "", text, None, bool(text.strip()), None, 0, False, "")


class Explainer(Protocol):
    """Anything that explains latents."""

    name: str

    async def explain(self, record: LatentRecord) -> Explanation:
        """Explain one latent (failures come back with `ok=False`)."""
        ...


def _few(record: LatentRecord, threshold: int) -> bool:
    return record.n_firings < threshold


class LLMExplainer:
    """Explanations written by a language model from marked examples."""

    name = "llm"

    def __init__(
        self,
        client: LLM,
        model: str,
        *,
        n_examples: int = 20,
        strategy: Strategy = "mixed",
        n_bins: int = 4,
        fraction: float = DEFAULT_ACTIVE_FRACTION,
        show_activations: bool = False,
        chain_of_thought: bool = False,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        few_threshold: int = FEW_EXAMPLES,
        prefill: bool = False,
    ) -> None:
        if prefill and chain_of_thought:
            raise ValueError(
                "a prefilled answer leaves no room for reasoning: choose prefill or chain_of_thought"
            )
        self.client = client
        self.model = model
        self.n_examples = n_examples
        self.strategy: Strategy = strategy
        self.n_bins = n_bins
        self.fraction = fraction
        self.show_activations = show_activations
        self.chain_of_thought = chain_of_thought
        self.max_tokens = max_tokens or (1500 if chain_of_thought else 300)
        self.temperature = temperature
        self.seed = seed
        self.few_threshold = few_threshold
        self.prefill = PREFILL if prefill else ""

    @property
    def prompt_version(self) -> str:
        """`PROMPT_VERSION` with the variant: `+cot` for chain of thought, `+acts` with activation
        lists, `+prefill` with the answer begun."""
        return (
            PROMPT_VERSION
            + ("+cot" if self.chain_of_thought else "")
            + ("+acts" if self.show_activations else "")
            + ("+prefill" if self.prefill else "")
        )

    def request(self, record: LatentRecord) -> tuple[ChatRequest, int]:
        """The request this explainer sends for `record`, and how many examples it shows."""
        examples = select_examples(record.train, self.n_examples, self.strategy, self.n_bins, self.seed)
        top = record.max_activation or max((ex.max_activation for ex in examples), default=0.0)
        system, user = explain_prompt(
            examples,
            fraction=self.fraction,
            show_activations=self.show_activations,
            chain_of_thought=self.chain_of_thought,
            top=top,
        )
        begun = (Message("assistant", self.prefill),) if self.prefill else ()
        messages = (Message("system", system), Message("user", user), *begun)
        request = ChatRequest(
            self.model, messages, self.max_tokens, self.temperature, not self.chain_of_thought
        )
        return request, len(examples)

    async def explain(self, record: LatentRecord) -> Explanation:
        """Ask the model; parse its answer."""
        few = _few(record, self.few_threshold)

        def result(text: str, confidence: float | None, error: str | None, n: int, raw: str) -> Explanation:
            ok = error is None
            return Explanation(
                record.latent,
                self.name,
                self.model,
                self.prompt_version,
                text,
                confidence,
                ok,
                error,
                n,
                few,
                raw,
            )

        request, n = self.request(record)
        if n == 0:
            return result("", None, "no activating examples to explain", 0, "")
        response = await self.client.chat(request)
        if not response.ok:
            return result("", None, f"request failed: {response.error}", n, "")
        answer = self.prefill + response.text
        parsed = read_explanation(answer)
        if parsed.error:
            logger.info("latent %d: unreadable explanation (%s)", record.latent, parsed.error)
        return result(parsed.text, parsed.confidence, parsed.error, n, answer)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _times(lift: float) -> str:
    return f"{lift:.1f}×" if lift < 10 else f"{lift:,.0f}×"


def _counts(e: Evidence) -> str:
    return f"lift {_times(e.lift)}, {e.firings}/{e.total_firings} firings"


def describe(evidence: Sequence[Evidence]) -> str:
    """A readable sentence for the selected evidence, e.g.
    `fires on " def" (lift 42×, 120/130 firings); after "(" (lift 9.0×, 30/130 firings)`."""
    groups = {"token": "fires on", "context": "after", "ngram": "in"}
    parts = []
    for kind, lead in groups.items():
        rules = [e for e in evidence if e.kind == kind]
        if rules:
            listed = ", ".join(f"{_quoted(''.join(e.items))} ({_counts(e)})" for e in rules)
            parts.append(f"{lead} {listed}")
    return "; ".join(parts)


def evidence_of(explanation: Explanation) -> list[Evidence]:
    """The rules an explanation states: a statistics explanation's evidence (from `raw`), else the
    quoted strings of its text as loose token rules (`"def"` matches `" def"` and `"Def"`)."""
    if explanation.explainer == StatsExplainer.name and explanation.raw:
        try:
            return [Evidence.from_dict(d) for d in json.loads(explanation.raw)["evidence"]]
        except (ValueError, KeyError, TypeError):
            pass
    quoted = re.findall(r'"([^"\n]{1,40})"|“([^”\n]{1,40})”|\'([^\'\n]{1,40})\'', explanation.text)
    items = [next(g for g in groups if g) for groups in quoted]
    return [Evidence("token", (t,), 0, 0, 0, 0, math.nan, 1.0, exact=False) for t in dict.fromkeys(items)]


class StatsExplainer:
    """Explanations from token statistics: no language model, instant, deterministic."""

    name = "stats"
    model = ""
    """No language model."""
    prompt_version = STATS_VERSION
    """The method's version (what `Explanation.prompt_version` holds)."""

    def __init__(self, *, few_threshold: int = FEW_EXAMPLES, **rules: Any) -> None:
        self.rules = Selection(**rules)
        """Which rules count (`evidence.Selection`: thresholds and how many of each kind)."""
        self.few_threshold = few_threshold

    def evidence(self, record: LatentRecord) -> list[Evidence]:
        """The selected rules, strongest of each kind first."""
        return select_evidence(all_evidence(record), self.rules)

    def explain_now(self, record: LatentRecord) -> Explanation:
        """The explanation, computed synchronously."""
        evidence = self.evidence(record)
        n = sum(1 for ex in record.train if ex.fires)
        few = _few(record, self.few_threshold)
        raw = json.dumps({"evidence": [e.to_dict() for e in evidence]}, ensure_ascii=False)
        if not evidence:
            error = f"no token, n-gram or preceding token stands out ({self.rules.describe()})"
            return Explanation(
                record.latent, self.name, "", STATS_VERSION, "", None, False, error, n, few, raw
            )
        tokens = [e for e in evidence if e.kind == "token"]
        confidence = combined(tokens).firings / max(tokens[0].total_firings, 1) if tokens else None
        text = describe(evidence)
        return Explanation(
            record.latent, self.name, "", STATS_VERSION, text, confidence, True, None, n, few, raw
        )

    async def explain(self, record: LatentRecord) -> Explanation:
        """The explanation (computed at once; async to fit the `Explainer` protocol)."""
        return self.explain_now(record)
