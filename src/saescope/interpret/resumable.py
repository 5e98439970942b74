"""Interpreting latents of an index resumably: what is stored is skipped, what is new is stored at once.

`interpret_index` looks up what the index already holds for this explainer (its name, model and
prompt version): a latent whose explanation is stored and scored by every scorer asked for (a
score found not testable counts: the same explanation stays untestable; a failed one does not) is
reported as `stored` and costs nothing; one whose explanation is stored but lacks a scorer is
only scored by the missing ones (its explanation reused); the others are explained and scored.
Work goes in chunks of latents — records built from the index, then `concurrent.explain_and_score`
— and each latent's result goes to the store the moment it exists (written at once, or within
two seconds when results come faster than that: `tables.ResultStore`), so a killed run loses at
most the latents in flight. Every stored explanation of the same explainer serves as a shuffled
chance baseline. A problem with the language model as a whole (a rejected key, an unreachable
endpoint: an `LLMError`) stops the run with the reason; what was stored stays.

This module knows nothing about the CLI or which backend answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from tqdm import tqdm

from .clients.errors import LLMError
from .concurrent import LatentResult, explain_and_score
from .explainers import Explainer, Explanation
from .records import LatentRecord
from .scorers import Scorer
from .source import IndexRecords
from .summary import LatentReport
from .tables import ExplanationKey, ResultStore, interpretations_of, key_of, measured, read_tables

logger = logging.getLogger(__name__)

COMPACT_EVERY = 512
"""Part files after which the store is compacted during a run (and always at its end)."""


def explainer_key(explainer: Explainer) -> ExplanationKey:
    """The key of the explanations `explainer` writes."""
    return ExplanationKey(
        explainer.name, str(getattr(explainer, "model", "")), str(getattr(explainer, "prompt_version", ""))
    )


def scorer_model(scorer: Scorer) -> str:
    """The language model a scorer asks ("" for none)."""
    return str(getattr(scorer, "model", ""))


class StoredFirst:
    """An explainer that returns the stored explanation of a latent when there is one."""

    def __init__(self, explainer: Explainer, stored: Mapping[int, Explanation]) -> None:
        self.explainer = explainer
        self.name = explainer.name
        self.stored = stored

    async def explain(self, record: LatentRecord) -> Explanation:
        found = self.stored.get(record.latent)
        return found if found is not None else await self.explainer.explain(record)


class Plan(NamedTuple):
    """What a run has to do, given what is stored."""

    stored: dict[int, LatentResult]
    """Latents already explained and scored by every scorer asked for (their stored results)."""
    todo: dict[tuple[str, ...], list[int]]
    """Latents to work on, by the names of the scorers they still need."""
    reuse: dict[int, Explanation]
    """Latents whose stored explanation only needs more scores."""
    kept: dict[int, LatentResult]
    """For the latents in `reuse`: their stored scores by the scorers not run again."""
    pool: dict[int, LatentResult]
    """Every usable explanation of this explainer, the chance baselines of the others: those stored
    before the run, joined by each new one as it comes."""


def plan(store: ResultStore, latents: Sequence[int], key: ExplanationKey, scorers: Sequence[Scorer]) -> Plan:
    """Sort `latents` by what is stored for them (see the module docstring)."""
    tables = read_tables(store.index_dir)
    mine = {i.latent: i for i in interpretations_of(tables) if key_of(i.explanation) == key}
    done = measured(tables)
    names = tuple(s.name for s in scorers)
    stored: dict[int, LatentResult] = {}
    todo: dict[tuple[str, ...], list[int]] = {}
    reuse: dict[int, Explanation] = {}
    kept: dict[int, LatentResult] = {}
    for latent in latents:
        found = mine.get(latent)
        if found is None or not found.explanation.ok:
            todo.setdefault(names, []).append(latent)
            continue
        missing = tuple(s.name for s in scorers if (latent, key, s.name, scorer_model(s)) not in done)
        ours = tuple(s for s in found.scores if s.scorer in names and s.scorer not in missing)
        result = LatentResult(latent, found.explanation, ours, None)
        if missing:
            todo.setdefault(missing, []).append(latent)
            reuse[latent] = found.explanation
            kept[latent] = result
        else:
            stored[latent] = result
    pool = {lat: LatentResult(lat, i.explanation, (), None) for lat, i in mine.items() if i.explanation.ok}
    return Plan(stored, todo, reuse, kept, pool)


class Outcome(NamedTuple):
    """What `interpret_index` did."""

    reports: tuple[LatentReport, ...]
    """One per latent that was found stored or finished in this run, ascending."""
    stopped: str | None
    """Why the run stopped before every latent was done (None when it did not)."""


class _Run:
    """The state of one run: where results go, what has been reported."""

    def __init__(
        self, records: IndexRecords, store: ResultStore, key: ExplanationKey, scorers: Sequence[Scorer]
    ) -> None:
        self.records = records
        self.store = store
        self.key = key
        self.models = {s.name: scorer_model(s) for s in scorers}
        self.reports: dict[int, LatentReport] = {}
        self.progress: tqdm | None = None

    def count(self, latent: int) -> int:
        return int(self.records.counts[latent])

    def finish(self, result: LatentResult, plan: Plan) -> None:
        """Store one latent's new result and report it (merged with its stored scores)."""
        self.store.add(result, self.key, self.models, explanation=result.latent not in plan.reuse)
        kept = plan.kept.get(result.latent)
        if kept is not None:
            result = result._replace(scores=kept.scores + result.scores)
        self.reports[result.latent] = LatentReport.of(result, self.count(result.latent))
        if result.ok and result.explanation is not None:
            plan.pool[result.latent] = LatentResult(result.latent, result.explanation, (), None)
        if self.progress is not None:
            self.progress.update(1)
        if self.store.pending_parts() >= COMPACT_EVERY:
            self.store.compact()


async def _chunk(
    run: _Run,
    latents: Sequence[int],
    explainer: Explainer,
    scorers: Sequence[Scorer],
    the_plan: Plan,
    concurrency: int,
    seed: int,
) -> None:
    records = [run.records.record(latent) for latent in latents]
    chunk = set(latents)
    done = [r for latent, r in the_plan.pool.items() if latent not in chunk]
    await explain_and_score(
        records,
        StoredFirst(explainer, the_plan.reuse),
        scorers,
        done=done,
        max_concurrent=concurrency,
        on_result=lambda result: run.finish(result, the_plan),
        seed=seed,
    )
    run.store.flush()


async def interpret_index(
    records: IndexRecords,
    latents: Sequence[int],
    explainer: Explainer,
    scorers: Sequence[Scorer],
    store: ResultStore,
    *,
    concurrency: int = 8,
    chunk: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Outcome:
    """Explain and score `latents` of the index `records` reads, storing each result in `store`
    (see the module docstring); `chunk`: latents per chunk (default: 2 × `concurrency`, at least 16)."""
    store.compact()
    key = explainer_key(explainer)
    the_plan = plan(store, latents, key, scorers)
    run = _Run(records, store, key, scorers)
    for latent, result in the_plan.stored.items():
        run.reports[latent] = LatentReport.of(result, run.count(latent), stored=True)
    size = chunk or max(2 * concurrency, 16)
    stopped = None
    run.progress = tqdm(total=len(latents), initial=len(run.reports), unit="latent", disable=not progress)
    try:
        for names, group in the_plan.todo.items():
            chosen = [s for s in scorers if s.name in names]
            for start in range(0, len(group), size):
                await _chunk(run, group[start : start + size], explainer, chosen, the_plan, concurrency, seed)
    except LLMError as e:
        stopped = str(e)
        logger.error("stopped: %s", e)
    finally:
        run.progress.close()
        store.compact()
    return Outcome(tuple(run.reports[lat] for lat in sorted(run.reports)), stopped)


__all__ = ["Outcome", "Plan", "StoredFirst", "explainer_key", "interpret_index", "plan", "scorer_model"]
