"""What a run prints: exact lines per latent, overall means, the latents set aside, the usage line —
and never a number for what was not measured."""

from __future__ import annotations

import json
import math
from pathlib import Path

from saescope.files import json_safe
from saescope.interpret.clients.base import ChatResponse
from saescope.interpret.clients.usage import UsageMeter
from saescope.interpret.concurrent import LatentResult
from saescope.interpret.explainers import Explanation
from saescope.interpret.scorers import Score
from saescope.interpret.selection import Skipped
from saescope.interpret.summary import InterpretResult, LatentReport, Usage, overall, scorer_lines


def score(
    latent: int,
    scorer: str,
    metric: str,
    value: float,
    details: dict | None = None,
    status: str = "measured",
    reason: str = "",
    support: int = 0,
) -> Score:
    interval = (value - 0.1, value + 0.1)
    return Score(
        latent,
        scorer,
        metric,
        value,
        *interval,
        0.5,
        0.45,
        0.55,
        40,
        details or {},
        status,
        reason,
        support,  # type: ignore[arg-type]
    )


def unmeasured(latent: int, scorer: str, metric: str, status: str, reason: str) -> Score:
    return score(latent, scorer, metric, math.nan, status=status, reason=reason)


def report(latent: int, *scores: Score, text: str = 'the token "x"', few: bool = False) -> LatentReport:
    e = Explanation(
        latent,
        "llm",
        "m",
        "v1",
        text,
        0.5 if text else None,
        bool(text),
        None if text else "no JSON",
        8,
        few,
        "",
    )
    error = None if text else "no explanation: no JSON"
    return LatentReport.of(LatentResult(latent, e, scores, error), 12)


def test_a_latent_in_a_few_lines() -> None:
    failed_scorer = unmeasured(3, "fuzzing", "accuracy", "failed", "no usable answer")
    r = report(
        3, score(3, "detection", "accuracy", 0.8), score(3, "detection", "f1", 0.75), failed_scorer, few=True
    )
    assert r.ok and r.status == "new"
    assert r.lines() == [
        'latent 3 (12 firings, new): the token "x"',
        "    confidence 0.50; few examples: read with care",
        "    detection (n=40): accuracy 0.800 [0.700, 0.900] (baseline 0.500), "
        "f1 0.750 [0.650, 0.850] (baseline 0.500)",
        "    ! fuzzing: no usable answer",
    ]
    failed = report(4, text="")
    assert not failed.ok and failed.lines() == [
        "latent 4 (12 firings, failed): (no explanation)",
        "    ! no explanation: no JSON",
    ]
    every_scorer_failed = report(5, failed_scorer)
    assert every_scorer_failed.status == "failed"  # explained, but nothing measured


def test_the_whole_run() -> None:
    reports = (
        report(1, score(1, "detection", "accuracy", 0.8)),
        report(2, score(2, "detection", "accuracy", 0.6)),
    )
    means = overall(reports)
    assert len(means) == 1 and math.isclose(means[0].mean, 0.7) and means[0].n_latents == 2
    meter = UsageMeter()
    meter.record("gpt-4o-mini", ChatResponse("x", 1000, 100))
    result = InterpretResult(
        Path("idx"), "llm", "gpt-4o-mini", "v1", ("detection",), reports,
        (Skipped(7, "dead (never fires in the index)"),), means, Usage.of(meter), 1.25, None,
    )  # fmt: skip
    text = result.render().splitlines()
    assert text[0] == (
        "idx: 2 latents by the llm explainer (gpt-4o-mini), scored by detection: "
        "2 new, 0 already stored, 0 failed (1.2s)"
    )
    assert "overall (mean over the latents where measured, 95% interval):" in text
    assert "    detection accuracy: 0.700 [" in text[-3] and text[-3].endswith("(n=2 latents, wide)")
    assert text[-2] == "skipped 1 latents (1 dead, 0 rare): 7: dead (never fires in the index)"
    assert (
        text[-1]
        == "language model: 1 calls (0 cached, 0 failed), 1,000 prompt + 100 completion tokens, ≈$0.0002"
    )
    document = result.to_json()
    assert document["usage"]["prompt_tokens"] == 1000 and document["latents"][0]["firings"] == 12
    assert Usage.of(None).line == "no language model asked"


NO_RULES = "the explanation quotes no tokens and states no token rules"
STATS_METRICS = ("auroc", "f1", "precision", "recall")


def test_unmeasured_metrics_are_named_not_printed_and_null_in_json() -> None:
    auroc = score(3, "statistics", "auroc", 0.9, support=20)
    recall = Score(3, "statistics", "recall", 0.75, 0.301, 0.954, *[math.nan] * 3, 40, {}, "measured", "", 4)
    precision = unmeasured(3, "statistics", "precision", "undefined", "nothing was predicted to fire")
    r = report(3, auroc, recall, precision)
    assert r.ok and r.lines()[2] == (
        "    statistics (n=40): auroc 0.900 [0.800, 1.000] (n=20; baseline 0.500), "
        "recall 0.750 [0.301, 0.954] (n=4, wide); not measured: precision (nothing was predicted to fire)"
    )
    assert "nan" not in "\n".join(r.lines())
    document = json.loads(json.dumps(json_safe(r.to_json())))
    shown = {s["metric"]: s for s in document["scores"]}
    assert shown["precision"]["value"] is None and shown["precision"]["status"] == "undefined"
    assert shown["recall"]["support"] == 4


def test_a_scorer_that_cannot_test_the_explanation_does_not_fail_the_latent() -> None:
    untestable = report(4, *(unmeasured(4, "statistics", m, "not_testable", NO_RULES) for m in STATS_METRICS))
    assert untestable.ok and untestable.status == "new" and untestable.messages == ()
    assert untestable.lines()[-1] == f"    statistics: not testable ({NO_RULES})"
    measured = report(5, score(5, "statistics", "auroc", 0.8))
    both = (untestable, measured)
    result = InterpretResult(
        Path("idx"), "llm", "m", "v1", ("stats",), both, (), overall(both), Usage.of(None), 1.0, None
    )
    text = result.render()
    assert text.splitlines()[0].endswith(
        "2 new, 0 already stored, 0 failed; not testable by statistics: 1 (1.0s)"
    )
    assert "statistics auroc: 0.800 vs baseline 0.500 (n=1 latent: no interval)" in text
    assert "nan" not in text and "statistics f1" not in text  # measured on no latent: left out


def test_means_over_latents_leave_out_what_was_measured_nowhere() -> None:
    reports = [
        report(
            i,
            score(i, "detection", "accuracy", 0.5 + 0.01 * i),
            unmeasured(i, "detection", "auroc", "undefined", "x"),
        )
        for i in range(12)
    ]
    [accuracy] = overall(reports)
    assert accuracy.metric == "accuracy" and accuracy.n_latents == 12
    assert accuracy.line().endswith("(n=12 latents)") and "wide" not in accuracy.line()


def test_a_baseline_that_could_not_be_scored_is_said_missing_not_left_blank() -> None:
    details = {"support_unit": "tokens", "baseline_text": "legal prose", "baseline_error": NO_RULES}
    auroc = Score(6, "statistics", "auroc", 0.9, 0.8, 1.0, *[math.nan] * 3, 40, details, "measured", "", 20)
    [line] = scorer_lines([auroc])
    assert line == f"statistics (n=40): auroc 0.900 [0.800, 1.000] (n=20 tokens); no baseline ({NO_RULES})"

    alone = Score(7, "detection", "accuracy", 0.9, 0.8, 1.0, *[math.nan] * 3, 40, {}, "measured", "", 40)
    assert scorer_lines([alone]) == ["detection (n=40): accuracy 0.900 [0.800, 1.000]; no chance baseline"]
