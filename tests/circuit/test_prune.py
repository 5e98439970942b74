"""Influence, pruning and the scores on a graph small enough to work out by hand."""

from __future__ import annotations

import pytest
import torch

from saescope.circuit.graph import AttributionGraph, Node, node_influence
from saescope.circuit.prune import graph_scores, prune


def hand_graph() -> AttributionGraph:
    """embedding → latent → logit (weights 2 and 3), error → logit (1), a weak latent → logit (0.01)."""
    nodes = (
        Node("latent", 0, 1, 7, 1.0),
        Node("latent", 0, 1, 8, 0.1),
        Node("error", 0, 1, -1, 1.0),
        Node("embedding", -1, 1, 42, 1.0),
        Node("logit", 1, 1, 5, 4.0),
    )
    adjacency = torch.zeros(5, 5)
    adjacency[0, 3] = 2.0
    adjacency[1, 3] = 0.5
    adjacency[4, 0] = 3.0
    adjacency[4, 2] = 1.0
    adjacency[4, 1] = 0.01
    return AttributionGraph(
        "transcoders",
        "m",
        "p",
        ("a", "b"),
        (1, 42),
        nodes,
        adjacency,
        torch.zeros(5),
        torch.zeros(5),
        torch.tensor([1.0]),
        1,
        (),
        2,
    )


def test_influence_by_hand() -> None:
    graph = hand_graph()
    influence = node_influence(graph)
    total = 3.0 + 1.0 + 0.01
    assert influence[0] == pytest.approx(3.0 / total)
    assert influence[2] == pytest.approx(1.0 / total)
    # the embedding feeds latent 0 (all of its input) and the weak latent (all of its input)
    assert influence[3] == pytest.approx(3.0 / total + 0.01 / total)
    scores = graph_scores(graph)
    assert scores.replacement == pytest.approx((3.01 / total) / (3.01 / total + 1.0 / total))
    # only the logit has an error input: a quarter of it
    assert scores.completeness < 1.0


def test_pruning_keeps_the_path_and_drops_the_weak_latent() -> None:
    graph = hand_graph()
    pruned = prune(graph, node_threshold=0.8, edge_threshold=0.98)
    # influences 0.75 (embedding), 0.75 (latent 0), 0.25 (error), 0.0025 (weak): the first two hold 80%
    assert pruned.nodes.tolist() == [True, False, False, True, True]
    assert pruned.edges[4, 0] and pruned.edges[0, 3] and not pruned.edges[4, 1]
    everything = prune(graph, node_threshold=1.0, edge_threshold=1.0)
    assert bool(everything.nodes.all())
