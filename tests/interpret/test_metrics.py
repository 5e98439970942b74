"""Metrics of summed statistics and their intervals (Wilson, bootstrap), checked against direct
computations and known values; the usage meter's prices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from saescope.interpret import metrics as M
from saescope.interpret.clients import ChatResponse, UsageMeter
from saescope.interpret.clients.usage import NOT_OWN_ENDPOINT


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
        " + unpriced calls (my-local-llama: not in the price table)"
    )
    custom = UsageMeter(prices={"my-local": (1.0, 0.0)})
    custom.record("my-local-llama", ChatResponse("a", 1_000_000, 5))
    assert custom.total().cost == pytest.approx(1.0)


def test_a_model_in_the_table_at_another_endpoint_is_unpriced() -> None:
    meter = UsageMeter()
    meter.record("gpt-4o-mini", ChatResponse("a", 1_000_000, 0), priced=False)
    assert meter.cost() is None and meter.unpriced() == {"gpt-4o-mini": NOT_OWN_ENDPOINT}
    assert meter.summary() == (
        "1 calls (0 cached, 0 failed), 1,000,000 prompt + 0 completion tokens, "
        f"cost unpriced (gpt-4o-mini: {NOT_OWN_ENDPOINT})"
    )
    local = UsageMeter()
    local.record("smollm2-135m", ChatResponse("a", 10, 10), discount=0.0, priced=False)
    assert local.cost() == 0.0 and local.summary().endswith("≈$0.0000")  # free, not unpriced


# ------------------------------------------------------------------------------------ intervals


def test_wilson_matches_known_values() -> None:
    assert M.wilson(3, 4) == pytest.approx((0.301, 0.954), abs=5e-4)
    assert M.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-4)
    assert M.wilson(20, 20) == pytest.approx((0.8389, 1.0), abs=5e-4)
    assert all(np.isnan(v) for v in M.wilson(0, 0))


def test_proportions_of_a_handful_get_an_honest_interval() -> None:
    # 4 excerpts that fire, 3 found: the bootstrap would say [0.25, 1.0] or, for 4 of 4, [1.0, 1.0]
    labels = [True] * 4 + [False] * 36
    said = [True, True, True, False] + [False] * 36
    rows = M.confusion_rows(labels, said, list(range(40)), 40)
    recall = M.estimate(rows, M.recall)
    assert (recall.value, recall.support) == (0.75, 4)
    assert (recall.low, recall.high) == pytest.approx((0.301, 0.954), abs=5e-4)
    perfect = M.estimate(M.confusion_rows(labels, labels, list(range(40)), 40), M.precision)
    assert perfect.value == 1.0 and perfect.high == 1.0 and perfect.low == pytest.approx(0.510, abs=5e-4)
    accuracy = M.estimate(rows, M.accuracy)
    assert accuracy.support == 40 and accuracy.low == pytest.approx(M.wilson(39, 40)[0])


def test_clustered_proportions_take_the_wider_of_wilson_and_the_bootstrap() -> None:
    # 10 examples of 20 tokens, firing in runs: tokens are not independent trials
    labels = [i % 20 < 10 and i // 20 % 2 == 0 for i in range(200)]
    said = [i % 20 < 10 and i // 20 < 6 for i in range(200)]
    groups = [i // 20 for i in range(200)]
    rows = M.confusion_rows(labels, said, groups, 10)
    recall = M.estimate(rows, M.recall)
    alone = M.wilson(30, 50)
    boot = M.bootstrap(rows, M.recall)
    assert recall.value == pytest.approx(0.6)
    assert recall.low == pytest.approx(min(alone[0], boot.low)) and recall.high == max(alone[1], boot.high)
    assert recall.high - recall.low > alone[1] - alone[0]


def test_an_estimate_without_a_value_says_why() -> None:
    quiet = M.confusion_rows([False] * 5, [False] * 5, list(range(5)), 5)
    recall = M.estimate(quiet, M.recall)
    assert np.isnan(recall.value) and np.isnan(recall.low) and recall.undefined == "nothing fired"
    assert M.estimate(quiet, M.precision).undefined == "nothing was predicted to fire"
    assert M.estimate(np.zeros((0, 4)), M.f1).undefined == "nothing was scored"
    one = M.estimate(M.mean_rows([0.7]), M.mean)
    assert one.value == 0.7 and np.isnan(one.low) and one.support == 1  # one latent: no interval
