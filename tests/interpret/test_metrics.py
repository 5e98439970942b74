"""Metrics of summed statistics and their bootstrap, checked against direct computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from saescope.interpret import metrics as M
from saescope.interpret.clients import ChatResponse, UsageMeter


def brute_auroc(labels: list[bool], scores: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_metrics_match_direct_computation() -> None:
    rng = np.random.default_rng(0)
    labels = list(rng.random(60) < 0.4)
    scores = list(np.round(rng.random(60), 1))  # ties on purpose
    groups = list(range(60))
    assert M.auroc(M.auroc_rows(labels, scores, groups, 60).sum(0)) == pytest.approx(
        brute_auroc(labels, scores)
    )
    predicted = [s >= 0.5 for s in scores]
    c = M.confusion_rows(labels, predicted, groups, 60).sum(0)
    tp = sum(y and p for y, p in zip(labels, predicted))
    assert c[0] == tp and c.sum() == 60
    assert M.f1(c) == pytest.approx(2 * tp / (sum(labels) + sum(predicted)))
    x, y = rng.random(50), rng.random(50)
    rows = M.pearson_rows(list(x), list(y), [i // 5 for i in range(50)], 10)  # 10 examples of 5 tokens
    assert M.pearson(rows.sum(0)) == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_bootstrap_is_seeded_and_brackets_the_value() -> None:
    rows = M.mean_rows(list(np.random.default_rng(1).normal(0.3, 1.0, 200)))
    a = M.bootstrap(rows, M.mean, seed=0)
    assert a == M.bootstrap(rows, M.mean, seed=0)
    assert a.low < a.value < a.high
    # the interval of a mean of 200 unit-variance values is about ± 2/sqrt(200) = ± 0.14
    assert 0.2 < a.high - a.low < 0.36


def test_bootstrap_of_nothing_or_undefined_is_nan() -> None:
    assert all(np.isnan(v) for v in M.bootstrap(np.zeros((0, 4)), M.f1))
    only_negatives = M.confusion_rows([False] * 5, [False] * 5, list(range(5)), 5)
    value = M.bootstrap(only_negatives, M.recall)
    assert np.isnan(value.value) and np.isnan(value.low)


def test_usage_meter_prices_and_summary() -> None:
    meter = UsageMeter()
    meter.record("gpt-4o-mini-2024-07-18", ChatResponse("a", 1_000_000, 100_000))
    meter.record("openai/gpt-4o-mini", ChatResponse("a", 0, 0, cached=True))
    meter.record("gpt-4o-mini", ChatResponse("", error="boom"))
    meter.record("my-local-llama", ChatResponse("a", 10, 10))
    meter.record("claude-haiku-4-5", ChatResponse("a", 1_000_000, 0), discount=0.5)
    total = meter.total()
    assert (total.calls, total.cached, total.failed) == (4, 1, 1)
    assert total.cost == pytest.approx(0.15 + 0.06 + 0.5)
    assert meter.summary() == (
        "4 calls (1 cached, 1 failed), 2,000,010 prompt + 100,010 completion tokens, ≈$0.7100"
        " (no price for my-local-llama)"
    )
    custom = UsageMeter(prices={"my-local": (1.0, 0.0)})
    custom.record("my-local-llama", ChatResponse("a", 1_000_000, 5))
    assert custom.total().cost == pytest.approx(1.0)
