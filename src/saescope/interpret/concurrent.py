"""Explaining and scoring many latents concurrently, resumably, one failure at a time.

`explain_and_score` explains every record not already done, gives each explanation a chance
baseline (by default another latent's explanation: a seeded derangement), then scores each latent
with every scorer. Latents run concurrently (`max_concurrent` at once; the client's own limit
bounds the requests in flight). A latent that fails — an unreadable explanation, a scorer that
raises — gets a `LatentResult` with `error` and a one-line warning naming it, and the run goes on;
one whose every scorer failed (no usable answer) has failed too, while one that a scorer finds not
testable (an explanation quoting no token, for the statistics scorer) has not: its explanation
stands, unscored by that scorer;
only a `SaescopeError` (a missing or rejected key, an unreachable endpoint) stops the run: every
other latent would fail the same way. `on_result` sees each result as soon as it exists, so a
caller can append it to a file; passing those results back as `done` skips their latents on the
next run (failed ones are tried again), and the response cache makes repeated requests free.

This module knows nothing about the latent index, the CLI, or which backend answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import SaescopeError
from .explainers import Explainer, Explanation, given_explanation
from .records import LatentRecord
from .scorers import Score, Scorer

logger = logging.getLogger(__name__)

SHUFFLE = "shuffle"
"""`baseline=SHUFFLE`: each latent's baseline is another latent's explanation."""


class LatentResult(NamedTuple):
    """Everything produced for one latent."""

    latent: int
    """The latent's index."""
    explanation: Explanation | None
    """Its explanation (None when explaining raised)."""
    scores: tuple[Score, ...]
    """One per scorer and metric (empty when the explanation failed)."""
    error: str | None
    """Why this latent failed (None when explained and scored)."""

    @property
    def ok(self) -> bool:
        """Whether the latent was explained and, when scorers ran, some scorer measured it or found
        its explanation not testable (a latent whose every scorer failed has failed)."""
        return self.error is None and (not self.scores or any(s.status != "failed" for s in self.scores))

    def to_dict(self) -> dict[str, Any]:
        """JSON values (one line of a results file)."""
        return {
            "latent": self.latent,
            "explanation": self.explanation.to_dict() if self.explanation else None,
            "scores": [s.to_dict() for s in self.scores],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatentResult:
        """The inverse of `to_dict`."""
        explanation = Explanation.from_dict(d["explanation"]) if d.get("explanation") else None
        scores = tuple(Score.from_dict(s) for s in d.get("scores", ()))
        return cls(int(d["latent"]), explanation, scores, d.get("error"))


def shuffled_baselines(explanations: Mapping[int, Explanation], seed: int = 0) -> dict[int, Explanation]:
    """For each latent, another latent's explanation (a seeded derangement of the usable ones);
    empty when fewer than two are usable."""
    usable = sorted(latent for latent, e in explanations.items() if e.ok)
    if len(usable) < 2:
        return {}
    order = usable[:]
    random.Random(seed).shuffle(order)
    return {order[i]: explanations[order[(i + 1) % len(order)]] for i in range(len(order))}


def _fail(latent: int, explanation: Explanation | None, stage: str, error: str) -> LatentResult:
    message = f"{stage}: {error}"
    logger.warning("latent %d: %s", latent, message)
    return LatentResult(latent, explanation, (), message)


async def _explain(explainer: Explainer, record: LatentRecord) -> Explanation | LatentResult:
    try:
        return await explainer.explain(record)
    except SaescopeError:
        raise
    except Exception as e:
        return _fail(record.latent, None, f"{explainer.name} explainer failed", f"{type(e).__name__}: {e}")


async def _score(
    record: LatentRecord,
    explanation: Explanation,
    scorers: Sequence[Scorer],
    baseline: Explanation | str | None,
) -> LatentResult:
    if not explanation.ok:
        return _fail(record.latent, explanation, "no explanation", explanation.error or "empty")
    scores: list[Score] = []
    for scorer in scorers:
        try:
            scores.extend(await scorer.score(record, explanation, baseline))
        except SaescopeError:
            raise
        except Exception as e:
            return _fail(
                record.latent, explanation, f"{scorer.name} scorer failed", f"{type(e).__name__}: {e}"
            )
    return LatentResult(record.latent, explanation, tuple(scores), None)


async def explain_and_score(
    records: Sequence[LatentRecord],
    explainer: Explainer,
    scorers: Sequence[Scorer] = (),
    *,
    done: Iterable[LatentResult] = (),
    baseline: str | None = SHUFFLE,
    max_concurrent: int = 16,
    on_result: Callable[[LatentResult], None] | None = None,
    seed: int = 0,
) -> list[LatentResult]:
    """Explain and score `records`; returns a result per latent, those in `done` included.

    `baseline`: `SHUFFLE` (another latent's explanation), any other text (used as the baseline
    explanation for every latent), or None (no baselines). Latents with a successful result in
    `done` are skipped; their explanations still serve as shuffled baselines for the others.
    """
    finished = {r.latent: r for r in done if r.ok}
    todo = [r for r in records if r.latent not in finished]
    limit = asyncio.Semaphore(max_concurrent)
    logger.info("interpreting %d latents (%d already done)", len(todo), len(records) - len(todo))

    async def explain(record: LatentRecord) -> Explanation | LatentResult:
        async with limit:
            return await _explain(explainer, record)

    explained = dict(zip((r.latent for r in todo), await asyncio.gather(*(explain(r) for r in todo))))
    results: dict[int, LatentResult] = {}
    for latent, e in explained.items():
        if isinstance(e, LatentResult):
            results[latent] = e
            if on_result:
                on_result(e)
    explanations = {lat: e for lat, e in explained.items() if isinstance(e, Explanation)}
    pool = {r.latent: r.explanation for r in finished.values() if r.explanation} | explanations
    baselines: Mapping[int, Explanation | str]
    if baseline == SHUFFLE:
        baselines = shuffled_baselines(pool, seed)
    else:
        baselines = {lat: given_explanation(baseline) for lat in explanations} if baseline else {}

    async def score(record: LatentRecord) -> None:
        async with limit:
            result = await _score(record, explanations[record.latent], scorers, baselines.get(record.latent))
        results[record.latent] = result
        if on_result:
            on_result(result)

    await asyncio.gather(*(score(r) for r in todo if r.latent in explanations))
    ordered = [finished.get(r.latent) or results[r.latent] for r in records]
    extra = [r for lat, r in finished.items() if lat not in {rec.latent for rec in records}]
    n_failed = sum(1 for r in results.values() if not r.ok)
    logger.info("latents done: %d, of which %d failed", len(results), n_failed)
    return ordered + extra
