"""What a run prints: exact lines per latent, overall means, the latents set aside, the usage line."""

from __future__ import annotations

import math
from pathlib import Path

from saescope.interpret.clients.base import ChatResponse
from saescope.interpret.clients.usage import UsageMeter
from saescope.interpret.concurrent import LatentResult
from saescope.interpret.explainers import Explanation
from saescope.interpret.scorers import Score
from saescope.interpret.selection import Skipped
from saescope.interpret.summary import InterpretResult, LatentReport, Usage, overall


def score(latent: int, scorer: str, metric: str, value: float, details: dict | None = None) -> Score:
    return Score(latent, scorer, metric, value, value - 0.1, value + 0.1, 0.5, 0.45, 0.55, 40, details or {})


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
    failed_scorer = score(3, "fuzzing", "accuracy", math.nan, {"error": "no usable answer"})
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
    assert "overall (mean over latents, 95% interval):" in text
    assert text[-2] == "skipped 1 latents (1 dead, 0 rare): 7: dead (never fires in the index)"
    assert (
        text[-1]
        == "language model: 1 calls (0 cached, 0 failed), 1,000 prompt + 100 completion tokens, ≈$0.0002"
    )
    document = result.to_json()
    assert document["usage"]["prompt_tokens"] == 1000 and document["latents"][0]["firings"] == 12
    assert Usage.of(None).line == "no language model asked"
