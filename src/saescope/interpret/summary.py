"""What an interpretation run reports: per latent, overall, and what the language model cost.

`LatentReport` is one latent's outcome — explained now, found already stored, or failed — with
its explanation, its scores and the problems met (one line each). `InterpretResult` is the whole
run (`saescope interpret`): its `render()` prints a few lines per latent (explanation,
confidence, each score with its 95% interval beside the chance baseline's), the mean of each
score over latents with its interval, the latents set aside, and the usage line (calls, tokens,
cost); `to_json()` gives the same as one document.

This module knows nothing about how the results were computed or stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .clients.usage import UsageMeter
from .concurrent import LatentResult
from .explainers import Explanation
from .scorers import Aggregate, Score, aggregate
from .selection import Skipped

Status = Literal["new", "stored", "failed"]

SHOWN = 25
"""Latents shown in full by `render` (the JSON document holds all)."""


def _interval(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def score_line(s: Score) -> str:
    """`accuracy 0.850 [0.750, 0.950] (baseline 0.500)`."""
    text = f"{s.metric} {_interval(s.value, s.ci_low, s.ci_high)}"
    return text + (f" (baseline {s.baseline:.3f})" if math.isfinite(s.baseline) else "")


def scorer_lines(scores: Sequence[Score]) -> list[str]:
    """One line per scorer: `detection (n=40): accuracy 0.850 [0.750, 0.950] (baseline 0.500), …`."""
    by_scorer: dict[str, list[Score]] = {}
    for s in scores:
        if "error" not in s.details:
            by_scorer.setdefault(s.scorer, []).append(s)
    return [
        f"{name} (n={group[0].n}): {', '.join(score_line(s) for s in group)}"
        for name, group in by_scorer.items()
    ]


def problems(result: LatentResult) -> tuple[str, ...]:
    """One line per problem of a latent: its failure, and each scorer that measured nothing."""
    found = [result.error] if result.error else []
    for s in result.scores:
        error = s.details.get("error")
        if error and f"{s.scorer}: {error}" not in found:
            found.append(f"{s.scorer}: {error}")
    return tuple(found)


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
        """Explained, and scored by at least one scorer when any ran."""
        return self.status != "failed"

    @classmethod
    def of(cls, result: LatentResult, firings: int, stored: bool = False) -> LatentReport:
        """The report of a pipeline result."""
        e = result.explanation
        measured = any("error" not in s.details for s in result.scores)
        ok = result.error is None and e is not None and e.ok and (measured or not result.scores)
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
    cost: float
    """Estimated US dollars (0 for local models and unpriced ones)."""
    line: str
    """The one-line summary."""

    @classmethod
    def of(cls, meter: UsageMeter | None) -> Usage:
        if meter is None:
            return cls(0, 0, 0, 0, 0, 0.0, "no language model asked")
        t = meter.total()
        return cls(t.calls, t.cached, t.failed, t.prompt_tokens, t.completion_tokens, t.cost, meter.summary())

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
        lines = [
            f"{self.index_dir}: {len(self.latents)} latents by the {by}, "
            f"scored by {', '.join(self.scorers)}: {counts['new']} new, "
            f"{counts['stored']} already stored, {counts['failed']} failed ({self.elapsed_s:.1f}s)"
        ]
        for r in self.latents[:SHOWN]:
            lines += r.lines()
        if len(self.latents) > SHOWN:
            lines.append(f"… {len(self.latents) - SHOWN} more latents (--json lists them all)")
        if self.overall:
            lines.append("overall (mean over latents, 95% interval):")
            lines += [f"    {a.line()}" for a in self.overall]
        if self.skipped:
            lines.append(skipped_line(self.skipped))
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        lines.append(f"language model: {self.usage.line}")
        return "\n".join(lines)


def overall(reports: Sequence[LatentReport]) -> tuple[Aggregate, ...]:
    """Each measured score's mean over the latents that have it."""
    return tuple(aggregate(s for r in reports for s in r.scores if "error" not in s.details))


__all__ = [
    "SHOWN",
    "InterpretResult",
    "LatentReport",
    "Usage",
    "overall",
    "problems",
    "score_line",
    "scorer_lines",
]
