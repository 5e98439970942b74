"""The validation's second correlation is computed over exactly the checks outside position 0 (BOS,
the attention sink, whose ablation is far from linear), is None when fewer than two of them remain,
and is printed and saved beside the correlation over every check, position 0's rows marked."""

from __future__ import annotations

import pytest
import torch

from saescope.circuit.command import CircuitResult
from saescope.circuit.graph import AttributionGraph, Node, node_influence
from saescope.circuit.prune import Pruned, Scores
from saescope.circuit.validation import NodeCheck, Validation, correlation_outside_first
from saescope.stats import pearson

# (node, influence, predicted, measured, direct, position): the BOS checks predict the wrong sign.
CHECKS = [
    NodeCheck(0, 0.5, 3.49, -6.36, 0.0, 0),
    NodeCheck(1, 0.4, -1.0, -0.8, 0.0, 1),
    NodeCheck(2, 0.3, 2.0, 1.5, 0.0, 2),
    NodeCheck(3, 0.2, 0.5, 0.7, 0.0, 1),
    NodeCheck(4, 0.1, -2.0, 4.0, 0.0, 0),
]


def test_the_second_correlation_is_over_exactly_the_checks_outside_position_0() -> None:
    later = [c for c in CHECKS if c.position > 0]
    expected = pearson([c.predicted for c in later], [c.measured for c in later])
    assert expected is not None
    assert correlation_outside_first(CHECKS) == pytest.approx(expected, abs=1e-12)
    everything = pearson([c.predicted for c in CHECKS], [c.measured for c in CHECKS])
    assert everything is not None and everything < 0 < expected  # the BOS rows change the answer


def test_fewer_than_two_checks_outside_position_0_is_not_measured() -> None:
    assert correlation_outside_first([c for c in CHECKS if c.position == 0]) is None
    assert correlation_outside_first([CHECKS[0], CHECKS[1], CHECKS[4]]) is None
    assert correlation_outside_first([]) is None


def bos_result(validation: Validation) -> CircuitResult:
    nodes = (*(Node("latent", 0, c.position, c.node, 1.0) for c in CHECKS), Node("logit", 1, 2, 9, 1.0))
    n = len(nodes)
    adjacency = torch.zeros(n, n)
    adjacency[n - 1, : n - 1] = 1.0
    graph = AttributionGraph(
        "transcoders", "tiny", "a b c", ("<bos>", "a", "b"), (0, 1, 2), nodes, adjacency,
        torch.zeros(n), torch.zeros(n), torch.tensor([1.0]), 1, (), n - 1, logit_tokens=(" c",),
    )  # fmt: skip
    everything = torch.ones(n, dtype=torch.bool)
    pruned = Pruned(everything, adjacency != 0, node_influence(graph), torch.zeros(n))
    return CircuitResult(graph, pruned, Scores(0.5, 0.5), validation, [], 0.0, {}, (), {}, 0.0)


def test_both_correlations_are_saved_and_printed_with_position_0_marked() -> None:
    validation = Validation(9, CHECKS, pearson([c.predicted for c in CHECKS], [c.measured for c in CHECKS]),
                            correlation_outside_first(CHECKS))  # fmt: skip
    result = bos_result(validation)
    saved = result.to_json()["validation"]
    assert saved["correlation"] == validation.correlation
    assert saved["correlation_outside_position_0"] == validation.correlation_outside_first
    assert saved["checks_outside_position_0"] == 3
    assert [c["position"] for c in saved["checks"]] == [0, 1, 2, 1, 0]
    lines = result._render_validation("c")
    assert f"Pearson r = {validation.correlation:.3f}" in lines[0]
    assert (
        f"over the 3 outside position 0: Pearson r = {validation.correlation_outside_first:.3f}" in lines[0]
    )
    marked = [line.lstrip().startswith("*") for line in lines[2:]]
    assert marked == [c.position == 0 for c in CHECKS]


def test_an_unmeasured_second_correlation_says_so() -> None:
    checks = CHECKS[:2]
    result = bos_result(Validation(9, checks, 1.0, correlation_outside_first(checks)))
    saved = result.to_json()["validation"]
    assert saved["correlation_outside_position_0"] is None
    assert saved["correlation_outside_position_0_note"].startswith("not measured")
    assert "over the 1 outside position 0: correlation not measured" in result._render_validation("c")[0]
