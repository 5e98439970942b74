"""Explanations and scores stored with the latent index: appended safely, read back whole.

In the index folder (any engine that reads Parquet reads them without saescope):

    explanations.parquet   one row per (latent, explainer, model, prompt_version):
                           `explanation` ("" on failure), `confidence` (null when not given), `ok`,
                           `error`, `n_examples` (windows the explainer read), `few_examples`
                           (fired fewer than 20 times), `raw` (the model's answer, or the
                           statistics as JSON), `created` (UTC), `best` (the one shown for the
                           latent: `best.best_of`), `headline` (`scorer/metric` of its headline
                           score, `best.HEADLINES`) and `headline_value`; the last three are set
                           by compaction, so that readers need none of this package's rules
    scores.parquet         one row per (latent, explainer, model, prompt_version, scorer,
                           scorer_model, metric): `value`, `ci_low`, `ci_high` (95%: Wilson for
                           proportions, bootstrap otherwise), `baseline`, `baseline_ci_low`,
                           `baseline_ci_high` (the same scorer on another latent's explanation),
                           `n` (examples scored), `status` (`measured`, `undefined`: no value on
                           these examples, `not_testable`: the scorer cannot test the explanation,
                           `failed`), `reason` (why there is no value), `support` (what the value
                           rests on), `error` (the reason again when nothing could be scored:
                           not testable or failed), `details` (JSON), `created`; a missing value
                           is null
    explanations/part-*.parquet, scores/part-*.parquet
                           rows written since the last compaction
    interpret/             the response cache, batch state, and the lock compaction holds

Tables written by an earlier version lack some columns: they read as null, and compaction writes
them back with every column of the current schema (a score's `status` derived from its `error`
and `value`: failed when it has an error, else measured or undefined); a reader of that version
drops the columns it does not know and, seeing the `error` of a not-testable score, takes it for
unscored.

Results are written as they come, scores first, then explanations, each file atomically
(`files.write_atomic`); a latent counts as done only once its explanation row exists. A result
arriving `flush_after` seconds (2) or more after the last write is written at once, with any
held since — so a slow latent (a language model) is on disk the moment it is done, while fast
ones (statistics: several a second) share a file instead of paying a file and two fsyncs each.
A killed run loses at most the latents in flight and those finished in the last two seconds.

`compact` folds the parts into the two tables under a file lock (several runs may share an
index), keeping for each key the newest row (a usable explanation over a failed one, a measured
score over a failed one), marks each latent's best explanation, and only then deletes the parts
it folded in. Readers never
write: they merge the tables with any parts left by a running or killed run.

This module knows nothing about language models, prompts or how results are computed.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..files import json_safe, write_atomic
from ..index.format import EXPLANATIONS, SCORES
from .best import Interpretation, best_of
from .concurrent import LatentResult
from .explainers import Explanation
from .scorers import Score, legacy_status, settled

EXPLANATION_PARTS = "explanations"
SCORE_PARTS = "scores"
WORK_DIR = "interpret"
"""Folder of the index holding the response cache, batch state and lock."""

TIMESTAMP = pa.timestamp("ms", tz="UTC")
EXPLANATION_KEY = ("latent", "explainer", "model", "prompt_version")
SCORE_KEY = (*EXPLANATION_KEY, "scorer", "scorer_model", "metric")

KEY_FIELDS = [
    ("latent", pa.int32()),
    ("explainer", pa.string()),
    ("model", pa.string()),
    ("prompt_version", pa.string()),
]
"""The columns of `EXPLANATION_KEY`, first in both tables."""

EXPLANATION_SCHEMA = pa.schema(
    [
        *KEY_FIELDS,
        ("explanation", pa.string()),
        ("confidence", pa.float64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("n_examples", pa.int32()),
        ("few_examples", pa.bool_()),
        ("raw", pa.string()),
        ("created", TIMESTAMP),
        ("best", pa.bool_()),
        ("headline", pa.string()),
        ("headline_value", pa.float64()),
    ]
)
VALUES = ("value", "ci_low", "ci_high", "baseline", "baseline_ci_low", "baseline_ci_high")
SCORE_SCHEMA = pa.schema(
    [
        *KEY_FIELDS,
        ("scorer", pa.string()),
        ("scorer_model", pa.string()),
        ("metric", pa.string()),
        *[(name, pa.float64()) for name in VALUES],
        ("n", pa.int32()),
        ("error", pa.string()),
        ("details", pa.string()),
        ("created", TIMESTAMP),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("support", pa.int32()),
    ]
)
UNSCORED = ("not_testable", "failed")
"""Score statuses whose reason is also written as `error` (what earlier versions read)."""


class ExplanationKey(NamedTuple):
    """What names one explanation of a latent (besides the latent)."""

    explainer: str
    """`stats`, `llm`, …"""
    model: str
    """The language model that wrote it ("" for none)."""
    prompt_version: str
    """Version of the prompt or method."""


def key_of(explanation: Explanation) -> ExplanationKey:
    return ExplanationKey(explanation.explainer, explanation.model, explanation.prompt_version)


def now() -> datetime:
    """The current time, UTC, to the millisecond (what a `created` column holds)."""
    moment = datetime.now(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def explanation_table(result: LatentResult, key: ExplanationKey, created: datetime) -> pa.Table:
    """One latent's explanation row (a failure row when it has none)."""
    e = result.explanation
    if e is None:  # the explainer raised: nothing but the reason
        e = Explanation(result.latent, *key, "", None, False, result.error, 0, False, "")
    row: dict[str, Any] = {
        "latent": result.latent,
        **key._asdict(),
        "explanation": e.text,
        "confidence": _number(e.confidence),
        "ok": e.ok,
        "error": None if e.ok else e.error,
        "n_examples": e.n_examples,
        "few_examples": e.few_examples,
        "raw": e.raw,
        "created": created,
    }
    return pa.Table.from_pylist([row], schema=EXPLANATION_SCHEMA)


def score_table(
    scores: Sequence[Score], key: ExplanationKey, scorer_models: Mapping[str, str], created: datetime
) -> pa.Table:
    """Score rows of one explanation (`scorer_models`: the model each scorer asked, "" for none)."""
    rows = []
    for s in map(settled, scores):
        rows.append(
            {
                "latent": s.latent,
                **key._asdict(),
                "scorer": s.scorer,
                "scorer_model": scorer_models.get(s.scorer, ""),
                "metric": s.metric,
                **{name: _number(getattr(s, name)) for name in VALUES},
                "n": s.n,
                "error": s.reason if s.status in UNSCORED else None,
                "details": json.dumps(json_safe(s.details), ensure_ascii=False),
                "created": created,
                "status": s.status,
                "reason": s.reason or None,
                "support": s.support,
            }
        )
    return pa.Table.from_pylist(rows, schema=SCORE_SCHEMA)


def parquet_bytes(table: pa.Table) -> memoryview:
    """A table as zstd-compressed Parquet bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return memoryview(sink.getvalue())


_sequence = itertools.count()


def write_part(folder: Path, table: pa.Table) -> Path:
    """Write `table` as a new part of `folder`, atomically; names sort in the order written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}.parquet"
    write_atomic(path, [parquet_bytes(table)])
    return path


@contextmanager
def locked(index_dir: Path) -> Iterator[None]:
    """Hold the index's interpretation lock (one compaction at a time, across processes)."""
    folder = index_dir / WORK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def latest(table: pa.Table, key: Sequence[str], order: Sequence[str]) -> pa.Table:
    """One row per `key`: the last one by the `order` columns (ascending); sorted by `key`."""
    if table.num_rows == 0:
        return table
    ranked = table.sort_by([(c, "ascending") for c in order])
    ranked = ranked.append_column("_row", pa.array(np.arange(ranked.num_rows)))
    rows = ranked.group_by(list(key), use_threads=False).aggregate([("_row", "max")]).column("_row_max")
    kept = ranked.take(np.sort(rows.to_numpy())).drop_columns(["_row"])
    return kept.sort_by([(c, "ascending") for c in key])


class Tables(NamedTuple):
    """Both tables, merged and deduplicated."""

    explanations: pa.Table
    scores: pa.Table
    parts: tuple[Path, ...]
    """The part files folded in."""


def conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns, in order: a column a file from an earlier version
    lacks is null, one it has that is no longer used is dropped."""
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _read(paths: Sequence[Path], schema: pa.Schema) -> pa.Table:
    tables = [conformed(pq.read_table(p), schema) for p in paths]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return table.append_column("_seq", pa.array(np.arange(table.num_rows)))


def with_status(scores: pa.Table) -> pa.Table:
    """Scores with `status` filled where a table from an earlier version left it null: failed when
    the row has an error, else measured or undefined by its value."""
    column = scores.column("status")
    if column.null_count == 0:
        return scores
    derived = pc.if_else(
        pc.is_valid(scores.column("error")),
        "failed",
        pc.if_else(pc.is_valid(scores.column("value")), "measured", "undefined"),
    )
    filled = pc.coalesce(column, derived)
    return scores.set_column(scores.schema.get_field_index("status"), "status", filled)


def _merge(index_dir: Path) -> Tables:
    explanation_parts = sorted((index_dir / EXPLANATION_PARTS).glob("part-*.parquet"))
    score_parts = sorted((index_dir / SCORE_PARTS).glob("part-*.parquet"))
    folded = [index_dir / EXPLANATIONS] if (index_dir / EXPLANATIONS).is_file() else []
    scored = [index_dir / SCORES] if (index_dir / SCORES).is_file() else []
    explanations = _read(folded + explanation_parts, EXPLANATION_SCHEMA)
    scores = with_status(_read(scored + score_parts, SCORE_SCHEMA))
    scores = scores.append_column("_clean", pc.not_equal(scores.column("status"), "failed"))
    explanations = latest(explanations, EXPLANATION_KEY, ("ok", "created", "_seq")).drop_columns(["_seq"])
    scores = latest(scores, SCORE_KEY, ("_clean", "created", "_seq")).drop_columns(["_seq", "_clean"])
    return Tables(explanations, scores, tuple(explanation_parts + score_parts))


def read_tables(index_dir: Path | str) -> Tables:
    """The stored explanations and scores, with the rows of any parts not yet compacted."""
    for _ in range(2):
        try:
            return _merge(Path(index_dir))
        except FileNotFoundError:  # a compaction removed a part between listing and reading it
            continue
    return _merge(Path(index_dir))


def _score_of(row: Mapping[str, Any]) -> Score:
    value, low, high, base, base_low, base_high = (
        math.nan if row[name] is None else float(row[name]) for name in VALUES
    )
    details = json.loads(row["details"]) if row["details"] else {}
    status = row["status"] or legacy_status(value, details)[0]
    reason = row["reason"] or row["error"] or ("" if status == "measured" else "not measured")
    head = (int(row["latent"]), row["scorer"], row["metric"], value, low, high, base, base_low, base_high)
    return Score(*head, int(row["n"]), details, status, reason, int(row["support"] or 0))


def _explanation_of(row: Mapping[str, Any]) -> Explanation:
    return Explanation(
        int(row["latent"]),
        row["explainer"],
        row["model"],
        row["prompt_version"],
        row["explanation"] or "",
        row["confidence"],
        bool(row["ok"]),
        row["error"],
        int(row["n_examples"]),
        bool(row["few_examples"]),
        row["raw"] or "",
    )


def interpretations_of(tables: Tables) -> list[Interpretation]:
    """Every stored explanation with its scores, by latent then key."""
    scores: dict[tuple[Any, ...], list[Score]] = {}
    for row in tables.scores.to_pylist():
        scores.setdefault(tuple(row[k] for k in EXPLANATION_KEY), []).append(_score_of(row))
    out = []
    for row in tables.explanations.to_pylist():
        found = tuple(scores.get(tuple(row[k] for k in EXPLANATION_KEY), ()))
        out.append(Interpretation(_explanation_of(row), found, row["created"]))
    return out


def measured(tables: Tables) -> set[tuple[int, ExplanationKey, str, str]]:
    """(latent, explanation key, scorer, scorer model) of every score that needs no new try: measured,
    undefined on its examples, or not testable (the same explanation stays untestable); not failed."""
    clean = tables.scores.filter(pc.not_equal(tables.scores.column("status"), "failed"))
    columns = [clean.column(c).to_pylist() for c in (*EXPLANATION_KEY, "scorer", "scorer_model")]
    return {(row[0], ExplanationKey(*row[1:4]), row[4], row[5]) for row in zip(*columns)}


def read_interpretations(index_dir: Path | str) -> list[Interpretation]:
    """Every explanation stored in the index at `index_dir` with its scores (failed ones too)."""
    return interpretations_of(read_tables(index_dir))


def best_by_latent(interpretations: Sequence[Interpretation]) -> dict[int, Interpretation]:
    """Each latent's best explanation (latents without a usable one are left out)."""
    grouped: dict[int, list[Interpretation]] = {}
    for i in interpretations:
        grouped.setdefault(i.latent, []).append(i)
    chosen = {latent: best_of(group) for latent, group in grouped.items()}
    return {latent: c for latent, c in sorted(chosen.items()) if c is not None}


def best_explanations(index_dir: Path | str) -> dict[int, Interpretation]:
    """Latent → its best explanation and scores (`Interpretation.headline` is the number to show
    and sort by): what dashboards and the server display. {} when nothing is stored."""
    return best_by_latent(read_interpretations(index_dir))


def _with_rankings(tables: Tables) -> pa.Table:
    """The explanations table with `best`, `headline` and `headline_value` filled in."""
    interpretations = interpretations_of(tables)  # in the table's order
    chosen = {(i.latent, *key_of(i.explanation)) for i in best_by_latent(interpretations).values()}
    heads = [i.headline for i in interpretations]
    columns = {
        "best": pa.array([(i.latent, *key_of(i.explanation)) in chosen for i in interpretations], pa.bool_()),
        "headline": pa.array([None if h is None else f"{h.scorer}/{h.metric}" for h in heads], pa.string()),
        "headline_value": pa.array([None if h is None else h.value for h in heads], pa.float64()),
    }
    table = tables.explanations
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table


def compact(index_dir: Path | str) -> int:
    """Fold the parts into `explanations.parquet` and `scores.parquet` (see the module docstring);
    returns how many part files were folded in."""
    index_dir = Path(index_dir)
    with locked(index_dir):
        tables = _merge(index_dir)
        if not tables.parts:
            return 0
        write_atomic(index_dir / SCORES, [parquet_bytes(tables.scores)])
        write_atomic(index_dir / EXPLANATIONS, [parquet_bytes(_with_rankings(tables))])
        for part in tables.parts:
            part.unlink(missing_ok=True)
        return len(tables.parts)


class ResultStore:
    """Writes one index's results as they come (see the module docstring)."""

    def __init__(self, index_dir: Path | str, flush_after: float = 2.0) -> None:
        self.index_dir = Path(index_dir)
        self.flush_after = flush_after
        self._scores: list[pa.Table] = []
        self._explanations: list[pa.Table] = []
        self._written = time.monotonic()

    def add(
        self,
        result: LatentResult,
        key: ExplanationKey,
        scorer_models: Mapping[str, str],
        explanation: bool = True,
    ) -> None:
        """Take one latent's result: its scores and (unless `explanation` is False: it was stored
        before and only scored now) its explanation row; written at once when the last write is
        `flush_after` seconds old, else held for the next write."""
        created = now()
        if result.scores:
            self._scores.append(score_table(result.scores, key, scorer_models, created))
        if explanation:
            self._explanations.append(explanation_table(result, key, created))
        if time.monotonic() - self._written >= self.flush_after:
            self.flush()

    def flush(self) -> None:
        """Write what is held: the scores, then the explanations."""
        if self._scores:
            write_part(self.index_dir / SCORE_PARTS, pa.concat_tables(self._scores))
        if self._explanations:
            write_part(self.index_dir / EXPLANATION_PARTS, pa.concat_tables(self._explanations))
        self._scores, self._explanations = [], []
        self._written = time.monotonic()

    def write(
        self,
        result: LatentResult,
        key: ExplanationKey,
        scorer_models: Mapping[str, str],
        explanation: bool = True,
    ) -> None:
        """Take one latent's result and write it now."""
        self.add(result, key, scorer_models, explanation)
        self.flush()

    def compact(self) -> int:
        """Write what is held, then fold the parts into the tables (see `compact`)."""
        self.flush()
        return compact(self.index_dir)

    def pending_parts(self) -> int:
        """Part files not yet compacted."""
        return sum(
            1 for folder in (EXPLANATION_PARTS, SCORE_PARTS) for _ in (self.index_dir / folder).glob("part-*")
        )


__all__ = [
    "EXPLANATION_SCHEMA",
    "SCORE_SCHEMA",
    "WORK_DIR",
    "ExplanationKey",
    "ResultStore",
    "Tables",
    "best_by_latent",
    "best_explanations",
    "compact",
    "key_of",
    "measured",
    "read_interpretations",
    "read_tables",
]
