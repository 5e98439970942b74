"""Scorers on a latent whose truth is known: it fires exactly on " def".

With the right explanation every scorer must be (near) perfect, with a wrong one (the explanation
of a latent that fires on " class", or a given text about " the") near chance, and the right
score's interval must lie above the baseline's. The language model is `ScriptedLLM`, which
answers by the word the explanation names — the wire itself is covered by the HTTP tests.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from saescope.interpret.explainers import Explanation, StatsExplainer, given_explanation
from saescope.interpret.records import LatentRecord
from saescope.interpret.scorers import (
    NO_PROBABILITIES,
    DetectionScorer,
    FuzzingScorer,
    Score,
    SimulationScorer,
    StatsScorer,
    aggregate,
    beats_baseline,
    by_latent,
    wrong_marks,
)

from .fakes import ScriptedLLM, token_latent

RIGHT = given_explanation('the Python keyword "def"', latent=0)
THE = 'the word "the"'


@pytest.fixture(scope="module")
def record() -> LatentRecord:
    return token_latent(" def", latent=0)


@pytest.fixture(scope="module")
def wrong() -> Explanation:
    """Another latent's explanation (a latent that fires on " class")."""
    return StatsExplainer().explain_now(token_latent(" class", latent=1, seed=1))


def run(
    scorer: object, record: LatentRecord, explanation: Explanation, baseline: Explanation | str | None
) -> dict[str, Score]:
    scores = asyncio.run(scorer.score(record, explanation, baseline))  # type: ignore[attr-defined]
    return {s.metric: s for s in scores}


def test_detection_right_vs_wrong_explanation(record: LatentRecord, wrong: Explanation) -> None:
    llm = ScriptedLLM()
    scores = run(DetectionScorer(llm, "fake", per_bin=5, group_size=5), record, RIGHT, wrong)
    acc = scores["accuracy"]
    assert acc.n == 40 and acc.details["n_positive"] == 20 and acc.details["failed_prompts"] == 0
    assert acc.value == 1.0 and scores["f1"].value == 1.0
    assert acc.baseline == 0.5 and scores["recall"].baseline == 0.0  # " class" never occurs: all "no"
    assert beats_baseline(acc) and beats_baseline(scores["f1"]) and scores["f1"].baseline == 0.0
    assert math.isnan(scores["precision"].baseline)  # never said "yes": precision undefined
    auroc = scores["auroc"]  # 0/1 answers: no probabilities, no AUROC — and the reason why
    assert math.isnan(auroc.value) and auroc.status == "undefined" and auroc.reason == NO_PROBABILITIES
    assert acc.support == 40 and scores["recall"].support == 20 and not acc.wide
    assert acc.details["baseline_text"] == wrong.text
    assert len(llm.requests) == 2 * 8  # 40 excerpts in groups of 5, for the explanation and its baseline
    assert all(r.messages[-1].content.count("\n1. ") == 1 for r in llm.requests)


def test_detection_against_a_given_baseline_text_is_near_chance(record: LatentRecord) -> None:
    scores = run(DetectionScorer(ScriptedLLM(probabilities=True), "fake"), record, RIGHT, THE)
    acc, auroc = scores["accuracy"], scores["auroc"]
    assert abs(acc.baseline - 0.5) < 0.2 and acc.baseline_ci_low < 0.5 < acc.baseline_ci_high
    assert auroc.value == 1.0 and abs(auroc.baseline - 0.5) < 0.2
    assert auroc.ci_low > auroc.baseline_ci_high and beats_baseline(acc)


def test_fuzzing_right_vs_wrong_explanation(record: LatentRecord, wrong: Explanation) -> None:
    scores = run(FuzzingScorer(ScriptedLLM(), "fake"), record, RIGHT, wrong)
    acc = scores["accuracy"]
    assert acc.n == 20 and acc.details["n_positive"] == 10  # half marked correctly
    assert acc.value == 1.0 and acc.baseline == 0.5 and beats_baseline(acc)


def test_wrong_marks_move_the_marks() -> None:
    import random

    ex = token_latent(" def").train[0]
    correct = [a > 0 for a in ex.activations]
    moved = wrong_marks(ex, correct, random.Random(0))
    assert moved is not None and sum(moved) == sum(correct)
    assert not any(m and c for m, c in zip(moved, correct))


def test_simulation_right_vs_wrong_explanation(record: LatentRecord, wrong: Explanation) -> None:
    scores = run(SimulationScorer(ScriptedLLM(), "fake"), record, RIGHT, wrong)
    pearson = scores["pearson"]
    assert pearson.n == 40 and pearson.value > 0.7 and pearson.ci_low > 0.5
    assert math.isnan(pearson.baseline)  # a constant prediction correlates with nothing
    simulated_the = run(SimulationScorer(ScriptedLLM(), "fake"), record, RIGHT, THE)["pearson"]
    assert abs(simulated_the.baseline) < 0.15 and simulated_the.ci_low > simulated_the.baseline_ci_high


def test_statistics_scorer_right_vs_wrong_explanation(record: LatentRecord, wrong: Explanation) -> None:
    right = StatsExplainer().explain_now(record)
    scores = run(StatsScorer(), record, right, wrong)
    for metric in ("auroc", "f1"):
        s = scores[metric]
        assert s.value == 1.0 and s.ci_low == 1.0, metric
    for metric in ("precision", "recall"):  # Wilson's interval: 1.0 on some dozens of tokens is not certain
        s = scores[metric]
        assert s.value == 1.0 and s.ci_high == 1.0 and 0.85 < s.ci_low < 1.0 and s.support > 20, metric
    auroc, f1 = scores["auroc"], scores["f1"]
    assert auroc.baseline < 0.55 and f1.baseline == 0.0
    assert beats_baseline(auroc) and beats_baseline(f1)
    [rule] = auroc.details["rules"]
    assert rule["rule"] == "token ' def'" and rule["precision"] == 1.0 and rule["recall"] == 1.0
    assert auroc.details["n_tokens"] == 40 * 16


def test_statistics_scorer_reads_quoted_tokens_of_any_explanation(record: LatentRecord) -> None:
    scores = run(StatsScorer(), record, RIGHT, THE)
    assert scores["f1"].value == 1.0 and scores["f1"].baseline < 0.2 and beats_baseline(scores["f1"])
    unquoted = run(StatsScorer(), record, given_explanation("Python function definitions"), THE)
    for s in unquoted.values():  # not testable by this scorer: no number, and not a failure
        assert s.status == "not_testable" and math.isnan(s.value) and "quotes no tokens" in s.reason
        assert not s.measured and "error" not in s.details
    against_prose = run(StatsScorer(), record, RIGHT, given_explanation("Python function definitions"))
    f1 = against_prose["f1"]  # measured; its baseline is prose, which it cannot test: no baseline
    assert f1.value == 1.0 and math.isnan(f1.baseline) and "quotes no tokens" in f1.details["baseline_error"]


def test_failed_explanation_scores_nan_without_asking(record: LatentRecord) -> None:
    llm = ScriptedLLM()
    failed = RIGHT._replace(ok=False, text="", error="unreadable")
    scores = run(DetectionScorer(llm, "fake"), record, failed, None)
    assert all(math.isnan(s.value) and s.n == 0 for s in scores.values()) and not llm.requests
    assert scores["accuracy"].status == "failed" and "unreadable" in scores["accuracy"].reason


def test_unreadable_answers_are_left_out_and_counted(record: LatentRecord) -> None:
    class Flaky(ScriptedLLM):
        def answer(self, request):  # type: ignore[no-untyped-def]
            return "no idea" if len(self.requests) % 2 else super().answer(request)

    scores = run(DetectionScorer(Flaky(), "fake"), record, RIGHT, None)
    acc = scores["accuracy"]
    assert acc.details["failed_prompts"] == 4 and acc.n == 20 and acc.value == 1.0
    assert acc.details["errors"][0] == "no JSON list found in the answer"


def test_scores_are_reproducible(record: LatentRecord, wrong: Explanation) -> None:
    a = run(DetectionScorer(ScriptedLLM(), "fake", seed=3), record, RIGHT, THE)
    b = run(DetectionScorer(ScriptedLLM(), "fake", seed=3), record, RIGHT, THE)
    assert a == b


def test_aggregate_over_latents() -> None:
    def score(latent: int, value: float, baseline: float) -> Score:
        return Score(latent, "detection", "f1", value, value, value, baseline, baseline, baseline, 10, {})

    scores = [score(i, 0.8 + 0.01 * i, 0.5) for i in range(10)] + [score(10, math.nan, math.nan)]
    [agg] = aggregate(scores)
    assert agg.n_latents == 10 and agg.mean == pytest.approx(0.845)
    assert agg.ci_low < agg.mean < agg.ci_high and agg.baseline == 0.5
    assert agg.line().startswith("detection f1: 0.845 [") and "vs baseline 0.500" in agg.line()
    table = by_latent(scores)
    assert table[3]["detection/f1"].value == pytest.approx(0.83)
