"""Results stored with the index: round trips, newest-wins compaction, the best explanation, crashes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from saescope.index.reader import Index, read_explanation_details, read_explanations
from saescope.interpret.best import best_of, headline
from saescope.interpret.concurrent import LatentResult
from saescope.interpret.explainers import Explanation
from saescope.interpret.scorers import Score
from saescope.interpret.tables import (
    EXPLANATION_PARTS,
    SCORE_PARTS,
    SCORE_SCHEMA,
    ExplanationKey,
    ResultStore,
    best_explanations,
    compact,
    conformed,
    measured,
    read_interpretations,
    read_tables,
)

STATS = ExplanationKey("stats", "", "saescope-stats-v1")
LLM = ExplanationKey("llm", "gpt-x", "saescope-interpret-v1")
MODELS = {"detection": "gpt-x", "statistics": ""}


def explanation(latent: int, key: ExplanationKey, text: str, confidence: float | None = 0.5) -> Explanation:
    ok = bool(text)
    error = None if ok else "no JSON object found in the answer"
    return Explanation(latent, *key, text, confidence, ok, error, 12, latent == 7, '{"raw": 1}')


def score(latent: int, scorer: str, metric: str, value: float, error: str | None = None) -> Score:
    details = {"error": error} if error else {"n_shown": 40}
    return Score(latent, scorer, metric, value, value - 0.1, value + 0.1, 0.5, 0.4, 0.6, 40, details)


def result(latent: int, key: ExplanationKey, text: str, *scores: Score) -> LatentResult:
    e = explanation(latent, key, text)
    return LatentResult(latent, e, scores, None if e.ok else f"no explanation: {e.error}")


def test_results_round_trip(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    nan = score(3, "detection", "auroc", math.nan, "no usable answer")
    written = result(3, LLM, "the token 'def'", score(3, "detection", "accuracy", 0.8), nan)
    store.write(written, LLM, MODELS)
    assert store.pending_parts() == 2 and not (tmp_path / "explanations.parquet").exists()
    (back,) = read_interpretations(tmp_path)  # readers see parts before any compaction
    assert back.explanation == written.explanation
    assert back.scores[0] == written.scores[0]
    assert math.isnan(back.scores[1].value) and back.scores[1].details == {"error": "no usable answer"}
    assert compact(tmp_path) == 2 and store.pending_parts() == 0
    assert read_interpretations(tmp_path) == [back]
    scores = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert [(r["scorer_model"], r["value"], r["error"]) for r in scores] == [
        ("gpt-x", 0.8, None),
        ("gpt-x", None, "no usable answer"),  # NaN is stored as null
    ]


def test_newest_row_wins_but_never_over_a_usable_one(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(result(1, STATS, "first"), STATS, MODELS)
    store.write(result(1, STATS, "second"), STATS, MODELS)
    store.write(result(2, STATS, "kept"), STATS, MODELS)
    store.compact()
    store.write(result(2, STATS, ""), STATS, MODELS)  # a later failure does not hide "kept"
    store.write(result(3, STATS, ""), STATS, MODELS)
    texts = {i.latent: (i.explanation.text, i.explanation.ok) for i in read_interpretations(tmp_path)}
    assert texts == {1: ("second", True), 2: ("kept", True), 3: ("", False)}
    store.compact()
    assert {i.latent: i.explanation.text for i in read_interpretations(tmp_path)} == {
        1: "second",
        2: "kept",
        3: "",
    }


def test_a_measured_score_is_not_replaced_by_a_failed_one(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(result(1, LLM, "x", score(1, "detection", "accuracy", 0.7)), LLM, MODELS)
    store.write(
        result(1, LLM, "x", score(1, "detection", "accuracy", math.nan, "no usable answer")), LLM, MODELS
    )
    store.compact()
    (i,) = read_interpretations(tmp_path)
    assert [s.value for s in i.scores] == [0.7]


def test_the_best_explanation_is_marked_and_read_by_the_index(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    other = ExplanationKey("llm", "other", "saescope-interpret-v1")
    store.write(result(5, STATS, "stats says", score(5, "statistics", "auroc", 0.99)), STATS, MODELS)
    store.write(result(5, LLM, "llm says", score(5, "detection", "accuracy", 0.6)), LLM, MODELS)
    store.write(result(5, other, "other says", score(5, "detection", "accuracy", 0.9)), other, MODELS)
    store.write(result(6, STATS, ""), STATS, MODELS)  # only a failure: no best explanation
    store.compact()
    # detection accuracy is judged before statistics AUROC, whatever the values
    best = best_explanations(tmp_path)
    assert list(best) == [5] and best[5].explanation.text == "other says"
    assert best[5].headline is not None and best[5].headline.value == 0.9
    table = pq.read_table(tmp_path / "explanations.parquet").to_pylist()
    assert [(r["latent"], r["explanation"]) for r in table if r["best"]] == [(5, "other says")]
    assert read_explanations(tmp_path) == {5: "other says"}
    # what the dashboards read through the index, without this package's rules
    assert [(r["latent"], r["headline"], r["headline_value"]) for r in table] == [
        (5, "detection/accuracy", 0.6),
        (5, "detection/accuracy", 0.9),
        (5, "statistics/auroc", 0.99),
        (6, None, None),
    ]
    (details,) = read_explanation_details(tmp_path).values()
    assert (details["explanation"], details["explainer"], details["model"]) == ("other says", "llm", "other")
    assert [(s["scorer"], s["metric"], s["value"]) for s in details["scores"]] == [
        ("detection", "accuracy", 0.9)
    ]


def test_best_of_breaks_ties_by_confidence_then_recency() -> None:
    from datetime import datetime, timezone

    from saescope.interpret.best import Interpretation

    early, late = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
    a = Interpretation(explanation(1, STATS, "a", 0.9), (), early)
    b = Interpretation(explanation(1, LLM, "b", 0.2), (), late)
    c = Interpretation(explanation(1, LLM, "c", 0.2), (), early)
    assert best_of([b, a, c]) == a  # no scores: confidence
    assert best_of([c, b]) == b  # same confidence: the newer
    assert best_of([Interpretation(explanation(1, LLM, ""), (), late)]) is None
    assert headline(
        [score(1, "statistics", "auroc", 0.7), score(1, "fuzzing", "accuracy", math.nan)]
    ) == score(1, "statistics", "auroc", 0.7)


def test_parts_of_a_killed_run_are_read_and_folded(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(result(1, STATS, "one", score(1, "statistics", "auroc", 0.8)), STATS, MODELS)
    store.compact()
    before = (tmp_path / "explanations.parquet").read_bytes()
    # killed mid-latent: its scores were written, its explanation not; and a temporary file left over
    store.write(
        result(2, STATS, "two", score(2, "statistics", "auroc", 0.7)), STATS, MODELS, explanation=False
    )
    (tmp_path / EXPLANATION_PARTS / ".part-9.parquet.123-4.tmp").write_bytes(b"half a file")
    tables = read_tables(tmp_path)
    assert tables.explanations.column("latent").to_pylist() == [1]  # latent 2 is not done
    assert sorted(tables.scores.column("latent").to_pylist()) == [1, 2]
    assert (tmp_path / "explanations.parquet").read_bytes() == before  # readers never write
    assert compact(tmp_path) == 1
    assert not list((tmp_path / SCORE_PARTS).glob("part-*"))
    assert compact(tmp_path) == 0  # nothing to fold: nothing rewritten


def test_the_index_reader_still_reads_an_old_explanations_file(built_index: Path, tmp_path: Path) -> None:
    import shutil

    import pyarrow as pa

    folder = Path(shutil.copytree(built_index, tmp_path / "index"))
    pq.write_table(pa.table({"latent": [1, 2], "explanation": ["one", ""]}), folder / "explanations.parquet")
    assert read_explanations(folder) == {1: "one"} == Index(folder).explanations()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_compactions_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for latent in range(40):
        store.write(result(latent, STATS, f"latent {latent}"), STATS, MODELS)
    pid = os.fork()
    if pid == 0:  # the child compacts while the parent writes and compacts too
        try:
            compact(tmp_path)
        finally:
            os._exit(0)
    for latent in range(40, 60):
        store.write(result(latent, STATS, f"latent {latent}"), STATS, MODELS)
    compact(tmp_path)
    os.waitpid(pid, 0)
    compact(tmp_path)
    assert sorted(i.latent for i in read_interpretations(tmp_path)) == list(range(60))
    assert ResultStore(tmp_path).pending_parts() == 0


def test_fast_results_share_a_file_and_a_flush_writes_them(tmp_path: Path) -> None:
    held = ResultStore(tmp_path, flush_after=3600)
    for latent in range(5):
        scored = result(latent, STATS, f"latent {latent}", score(latent, "statistics", "auroc", 0.6))
        held.add(scored, STATS, MODELS)
    assert held.pending_parts() == 0 and read_interpretations(tmp_path) == []
    held.flush()
    assert held.pending_parts() == 2 and len(read_interpretations(tmp_path)) == 5
    at_once = ResultStore(tmp_path, flush_after=0)
    at_once.add(result(9, STATS, "latent 9"), STATS, MODELS)
    assert at_once.pending_parts() == 3 and len(read_interpretations(tmp_path)) == 6


def test_details_put_the_headline_score_first(tmp_path: Path) -> None:
    scores = (
        score(2, "statistics", "auroc", 0.7),
        score(2, "detection", "f1", 0.5),
        score(2, "detection", "accuracy", 0.8),
    )
    ResultStore(tmp_path).write(result(2, LLM, "x", *scores), LLM, MODELS)
    compact(tmp_path)
    details = read_explanation_details(tmp_path)[2]
    assert details["headline"] == "detection/accuracy" and details["headline_value"] == 0.8
    order = [f"{s['scorer']}/{s['metric']}" for s in details["scores"]]
    assert order[0] == "detection/accuracy" and len(order) == 3 and details["confidence"] == 0.5


def test_a_table_from_an_earlier_version_is_read_and_upgraded(tmp_path: Path) -> None:
    import pyarrow as pa

    ResultStore(tmp_path).write(result(1, STATS, "one", score(1, "statistics", "auroc", 0.8)), STATS, MODELS)
    compact(tmp_path)
    path = tmp_path / "explanations.parquet"
    older = pq.read_table(path).drop_columns(["headline", "headline_value"])  # before they existed
    pq.write_table(older.append_column("retired", pa.array(["x"])), path)
    assert [i.explanation.text for i in read_interpretations(tmp_path)] == ["one"]
    ResultStore(tmp_path).write(result(2, STATS, "two"), STATS, MODELS)
    compact(tmp_path)
    upgraded = pq.read_table(path)
    assert "retired" not in upgraded.column_names
    assert upgraded.column("headline").to_pylist() == ["statistics/auroc", None]


def test_score_statuses_round_trip_and_tables_without_them_still_read(tmp_path: Path) -> None:
    import pyarrow as pa

    nan = math.nan
    reasons = {
        "undefined": "nothing was predicted to fire",
        "not_testable": "no quoted token",
        "failed": "boom",
    }

    def with_status(scorer: str, metric: str, value: float, status: str, support: int = 0) -> Score:
        reason = reasons.get(status, "")
        return Score(1, scorer, metric, value, *[nan] * 5, 40, {}, status, reason, support)  # type: ignore[arg-type]

    written = (
        with_status("statistics", "auroc", 0.8, "measured", 20),
        with_status("statistics", "precision", nan, "undefined"),
        with_status("detection", "accuracy", nan, "failed"),
        with_status("fuzzing", "accuracy", nan, "not_testable"),
    )
    ResultStore(tmp_path).write(result(1, LLM, "x", *written), LLM, {**MODELS, "fuzzing": "gpt-x"})
    compact(tmp_path)
    (back,) = read_interpretations(tmp_path)
    by_metric = {(s.scorer, s.metric): s for s in back.scores}
    assert {k: (s.status, s.reason, s.support) for k, s in by_metric.items()} == {
        (s.scorer, s.metric): (s.status, s.reason, s.support) for s in written
    }
    table = pq.read_table(tmp_path / "scores.parquet")
    errors = {(r["scorer"], r["metric"]): r["error"] for r in table.to_pylist()}
    assert (
        errors[("fuzzing", "accuracy")] == "no quoted token" and errors[("detection", "accuracy")] == "boom"
    )
    assert errors[("statistics", "auroc")] is None and errors[("statistics", "precision")] is None
    # done, and not to be tried again: measured, undefined on its examples, or not testable; not failed
    assert {scorer for _, _, scorer, _ in measured(read_tables(tmp_path))} == {"statistics", "fuzzing"}

    # a reader of the earlier version: the columns it does not know are dropped
    older = pa.schema([f for f in SCORE_SCHEMA if f.name not in ("status", "reason", "support")])
    assert conformed(table, older).num_rows == 4
    # a table of the earlier version: statuses derived from error and value, and written on compaction
    pq.write_table(table.drop_columns(["status", "reason", "support"]), tmp_path / "scores.parquet")
    derived = {(s.scorer, s.metric): (s.status, s.reason) for s in read_interpretations(tmp_path)[0].scores}
    assert derived == {
        ("statistics", "auroc"): ("measured", ""),
        ("statistics", "precision"): ("undefined", "not measured"),
        ("detection", "accuracy"): ("failed", "boom"),
        ("fuzzing", "accuracy"): ("failed", "no quoted token"),  # what that version wrote of it
    }
    ResultStore(tmp_path).write(result(2, LLM, "y"), LLM, MODELS)
    compact(tmp_path)
    assert pq.read_table(tmp_path / "scores.parquet").column("status").null_count == 0
