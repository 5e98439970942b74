"""What an interpretation run reports: per latent, overall, and what the language model cost.

`LatentReport` is one latent's outcome — explained now, found already stored, or failed — with
its explanation, its scores and the problems met (one line each). `InterpretResult` is the whole
run (`saescope interpret`): its `render()` prints a few lines per latent (explanation,
confidence, each measured score with its 95% interval beside the chance baseline's, and what it
rests on when that is not the scorer's examples — flagged wide below `metrics.FEW`), the mean of
each score over the latents where it was measured, the latents set aside, and the usage line
(calls, tokens, cost, or what could not be priced); `to_json()` gives the same as one document.
Nothing unmeasured is printed as a number: a metric without a value is named with its reason
(`not measured: precision (nothing was predicted to fire)`) and is null in the JSON; a scorer
that cannot test an explanation says so (`statistics: not testable (…)`) without failing the latent.

This module knows nothing about how the results were computed or stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import metrics as M
from .clients.usage import UsageMeter
from .concurrent import LatentResult
from .explainers import Explanation
from .scorers import Aggregate, Score, aggregate
from .selection import Skipped

Status = Literal["new", "stored", "failed"]

SHOWN = 25
"""Latents shown in full by `render` (the JSON document holds all)."""


def score_line(s: Score) -> str:
    """`accuracy 0.850 [0.750, 0.950] (baseline 0.500)`; with what it rests on when that is not
    the scorer's examples: `precision 0.750 [0.301, 0.954] (n=4, wide; baseline 0.500)`,
    `recall 0.786 [0.662, 0.887] (n=56 tokens; baseline 0.000)`."""
    notes = []
    unit = s.details.get("support_unit")
    if s.wide or (s.support and (s.support != s.n or unit)):
        notes.append(f"n={s.support}" + (f" {unit}" if unit else "") + (", wide" if s.wide else ""))
    if math.isfinite(s.baseline):
        notes.append(f"baseline {s.baseline:.3f}")
    text = f"{s.metric} {M.interval_text(s.value, s.ci_low, s.ci_high)}"
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _scorer_line(name: str, group: Sequence[Score]) -> str | None:
    """One scorer's line (None when it failed: `problems` says why)."""
    untestable = next((s for s in group if s.status == "not_testable"), None)
    if untestable is not None:
        return f"{name}: not testable ({untestable.reason})"
    measured = [s for s in group if s.measured]
    undefined = [s for s in group if s.status == "undefined"]
    if not measured and not undefined:
        return None
    shown = [", ".join(score_line(s) for s in measured)] if measured else []
    if undefined:
        shown.append(f"not measured: {', '.join(f'{s.metric} ({s.reason})' for s in undefined)}")
    no_baseline = group[0].details.get("baseline_error")
    if no_baseline:
        shown.append(f"no baseline ({no_baseline})")
    elif measured and not any(math.isfinite(s.baseline) for s in measured):
        shown.append("no chance baseline")  # one latent has no other's explanation to be compared with
    return f"{name} (n={group[0].n}): {'; '.join(shown)}"


def scorer_lines(scores: Sequence[Score]) -> list[str]:
    """One line per scorer that measured something or found the explanation not testable:
    `detection (n=40): accuracy 0.850 [0.750, 0.950] (baseline 0.500), …; not measured: auroc (…)`,
    ending with why there is no baseline when its explanation could not be scored, or that there is
    none."""
    by_scorer: dict[str, list[Score]] = {}
    for s in scores:
        by_scorer.setdefault(s.scorer, []).append(s)
    lines = (_scorer_line(name, group) for name, group in by_scorer.items())
    return [line for line in lines if line is not None]


def problems(result: LatentResult) -> tuple[str, ...]:
    """One line per problem of a latent: its failure, and each scorer that failed to score it."""
    found = [result.error] if result.error else []
    for s in result.scores:
        line = f"{s.scorer}: {s.reason}"
        if s.status == "failed" and line not in found:
            found.append(line)
    return tuple(found)


def not_testable(scores: Sequence[Score]) -> tuple[str, ...]:
    """The scorers that found the explanation not testable."""
    return tuple(dict.fromkeys(s.scorer for s in scores if s.status == "not_testable"))


class LatentReport(NamedTuple):
    """One latent's outcome."""

    latent: int
    """The latent's index."""
    status: Status
    """`new` (explained in this run), `stored` (done by an earlier run) or `failed`."""
    firings: int
    """Its firings in the index."""
    explanation: Explanation | None
    """Its explanation (None when explaining raised)."""
    scores: tuple[Score, ...]
    """Its scores."""
    messages: tuple[str, ...]
    """What went wrong, one line each."""

    @property
    def ok(self) -> bool:
        """Explained, and — when scorers ran — measured or found not testable by at least one."""
        return self.status != "failed"

    @classmethod
    def of(cls, result: LatentResult, firings: int, stored: bool = False) -> LatentReport:
        """The report of a pipeline result."""
        e = result.explanation
        ok = result.ok and e is not None and e.ok
        status: Status = ("stored" if stored else "new") if ok else "failed"
        return cls(result.latent, status, firings, e, result.scores, problems(result))

    def lines(self) -> list[str]:
        """A few readable lines."""
        e = self.explanation
        text = e.text if e is not None and e.ok else "(no explanation)"
        head = f"latent {self.latent} ({self.firings:,} firings, {self.status}): {text}"
        notes = []
        if e is not None and e.confidence is not None:
            notes.append(f"confidence {e.confidence:.2f}")
        if e is not None and e.few_examples:
            notes.append("few examples: read with care")
        out = [head] + ([f"    {'; '.join(notes)}"] if notes else [])
        out += [f"    {line}" for line in scorer_lines(self.scores)]
        out += [f"    ! {m}" for m in self.messages]
        return out

    def to_json(self) -> dict[str, Any]:
        e = self.explanation
        return {
            "latent": self.latent,
            "status": self.status,
            "firings": self.firings,
            "explanation": None if e is None else {k: v for k, v in e.to_dict().items() if k != "raw"},
            "scores": [s.to_dict() for s in self.scores],
            "messages": list(self.messages),
        }


class Usage(NamedTuple):
    """What the run asked of language models."""

    calls: int
    """Answers received from a backend (cache hits not included)."""
    cached: int
    """Answers served from the response cache."""
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    """Estimated US dollars of the priced calls (0 for a local model; None when calls were sent and
    none could be priced: a model not in the price table, or not the provider's own endpoint)."""
    unpriced: dict[str, str]
    """Model → why its calls are not priced (empty when every call is)."""
    line: str
    """The one-line summary."""

    @classmethod
    def of(cls, meter: UsageMeter | None) -> Usage:
        if meter is None:
            return cls(0, 0, 0, 0, 0, 0.0, {}, "no language model asked")
        t = meter.total()
        counts = (t.calls, t.cached, t.failed, t.prompt_tokens, t.completion_tokens)
        return cls(*counts, meter.cost(), meter.unpriced(), meter.summary())

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def skipped_line(skipped: Sequence[Skipped]) -> str:
    """`skipped 26 latents: 3 dead, 2 rare (e.g. 12: fires 3 times (--min-count 10))`."""
    dead = sum(1 for s in skipped if s.reason.startswith("dead"))
    shown = ", ".join(f"{s.latent}: {s.reason}" for s in skipped[:3])
    more = ", …" if len(skipped) > 3 else ""
    return f"skipped {len(skipped)} latents ({dead} dead, {len(skipped) - dead} rare): {shown}{more}"


class InterpretResult(NamedTuple):
    """The result of `saescope interpret`."""

    index_dir: Path
    """The index folder the results are stored in."""
    explainer: str
    """`stats` or `llm`."""
    model: str
    """The language model asked ("" when none)."""
    prompt_version: str
    """Version of the explainer's prompt or method."""
    scorers: tuple[str, ...]
    """The scorers run."""
    latents: tuple[LatentReport, ...]
    """One report per latent interpreted or found stored, ascending."""
    skipped: tuple[Skipped, ...]
    """Latents set aside before any work (dead, or firing fewer than --min-count times)."""
    overall: tuple[Aggregate, ...]
    """Each score's mean over the latents, with its interval and the baseline's."""
    usage: Usage
    """Language-model calls, tokens and cost of this run."""
    elapsed_s: float
    """Seconds the run took."""
    stopped: str | None
    """Why the run stopped before every latent was done (a rejected key, an unreachable endpoint)."""

    @property
    def succeeded(self) -> int:
        """Latents explained and scored, now or before."""
        return sum(1 for r in self.latents if r.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index_dir),
            "explainer": self.explainer,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "scorers": list(self.scorers),
            "latents": [r.to_json() for r in self.latents],
            "skipped": [s.to_json() for s in self.skipped],
            "overall": [a._asdict() for a in self.overall],
            "usage": self.usage.to_json(),
            "elapsed_s": self.elapsed_s,
            "stopped": self.stopped,
        }

    def render(self) -> str:
        counts = {s: sum(1 for r in self.latents if r.status == s) for s in ("new", "stored", "failed")}
        by = f"{self.explainer} explainer" + (f" ({self.model})" if self.model else "")
        untestable: dict[str, int] = {}
        for r in self.latents:
            for scorer in not_testable(r.scores):
                untestable[scorer] = untestable.get(scorer, 0) + 1
        aside = "".join(f"; not testable by {k}: {v}" for k, v in untestable.items())
        lines = [
            f"{self.index_dir}: {len(self.latents)} latents by the {by}, "
            f"scored by {', '.join(self.scorers)}: {counts['new']} new, "
            f"{counts['stored']} already stored, {counts['failed']} failed{aside} ({self.elapsed_s:.1f}s)"
        ]
        for r in self.latents[:SHOWN]:
            lines += r.lines()
        if len(self.latents) > SHOWN:
            lines.append(f"… {len(self.latents) - SHOWN} more latents (--json lists them all)")
        if self.overall:
            lines.append("overall (mean over the latents where measured, 95% interval):")
            lines += [f"    {a.line()}" for a in self.overall]
        if self.skipped:
            lines.append(skipped_line(self.skipped))
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        lines.append(f"language model: {self.usage.line}")
        return "\n".join(lines)


def overall(reports: Sequence[LatentReport]) -> tuple[Aggregate, ...]:
    """Each score's mean over the latents where it was measured (a metric measured nowhere is left out)."""
    return tuple(aggregate(s for r in reports for s in r.scores))


__all__ = [
    "SHOWN",
    "InterpretResult",
    "LatentReport",
    "Usage",
    "not_testable",
    "overall",
    "problems",
    "score_line",
    "scorer_lines",
]
