"""The graph files name every node once: layer 0's latent L and layer L's error node at one position
(one id, `0_L_P`, in circuit-tracer's old scheme) get distinct ids in both files, so every edge and
every checked node resolves to exactly one node; checks give the node's id and its index; logits
carry their token."""

from __future__ import annotations

from pathlib import Path

import torch

from saescope.circuit.command import CircuitResult
from saescope.circuit.formats import circuit_tracer_json, node_ids
from saescope.circuit.graph import AttributionGraph, Node, node_influence
from saescope.circuit.prune import Pruned, Scores
from saescope.circuit.validation import NodeCheck, Validation


def colliding_graph() -> AttributionGraph:
    """embedding → layer 0's latent 1 → layer 1's latent 7 → logit, and layer 1's error node → logit,
    all at position 2: the latent (0, 1, 2) and the error (1, 2) were both `0_1_2`."""
    nodes = (
        Node("latent", 0, 2, 1, 1.0),
        Node("latent", 1, 2, 7, 1.0),
        Node("error", 1, 2, -1, 0.5),
        Node("embedding", -1, 2, 42, 1.0),
        Node("logit", 2, 2, 5, 4.0),
    )
    adjacency = torch.zeros(5, 5)
    adjacency[0, 3] = 2.0
    adjacency[1, 0] = 1.5
    adjacency[4, 1] = 3.0
    adjacency[4, 2] = 1.0
    return AttributionGraph(
        "transcoders",
        "m",
        "p",
        ("a", "b", "c"),
        (1, 2, 42),
        nodes,
        adjacency,
        torch.zeros(5),
        torch.zeros(5),
        torch.tensor([1.0]),
        2,
        (),
        2,
        logit_tokens=(" Paris",),
    )


def result(graph: AttributionGraph) -> CircuitResult:
    everything = torch.ones(len(graph.nodes), dtype=torch.bool)
    pruned = Pruned(everything, graph.adjacency != 0, node_influence(graph), torch.zeros(len(graph.nodes)))
    checks = [NodeCheck(2, 0.3, -1.0, -0.9, -1.0, 2), NodeCheck(0, 0.2, -4.5, -3.0, 0.0, 2)]
    return CircuitResult(
        graph,
        pruned,
        Scores(0.5, 0.5),
        Validation(5, checks, 1.0, 1.0),
        [],
        0.0,
        {},
        (Path("g.json"), Path("g.safetensors"), Path("g.circuit-tracer.json")),
        {},
        0.0,
    )


def test_ids_are_unique_and_error_nodes_are_layer_minus_one_position() -> None:
    ids = node_ids(colliding_graph())
    assert ids == ["0_1_2", "1_7_2", "1_-1_2", "E_42_2", "3_5_2"]


def test_our_json_names_every_edge_end_and_checked_node_once() -> None:
    graph = colliding_graph()
    document = result(graph).to_json()
    by_id: dict[str, list[int]] = {}
    for node in document["nodes"]:
        by_id.setdefault(node["id"], []).append(node["index"])
    assert all(len(indices) == 1 for indices in by_id.values())
    assert [n["index"] for n in document["nodes"]] == list(range(len(graph.nodes)))
    ends = {
        (graph.nodes[by_id[e["source"]][0]].kind, graph.nodes[by_id[e["target"]][0]].kind)
        for e in document["edges"]
    }
    assert ("error", "logit") in ends and ("latent", "logit") in ends and ("embedding", "latent") in ends
    checks = document["validation"]["checks"]
    assert [(c["node"], c["index"]) for c in checks] == [("1_-1_2", 2), ("0_1_2", 0)]
    assert checks[0]["predicted"] == -1.0 and checks[0]["measured"] == -0.9
    logits = [n for n in document["nodes"] if n["kind"] == "logit"]
    assert [n["token"] for n in logits] == [" Paris"]


def test_the_circuit_tracer_file_keeps_every_node() -> None:
    graph = colliding_graph()
    r = result(graph)
    tracer = circuit_tracer_json(graph, r.pruned, "g", 0.8, {}, {5: " Paris"})
    ids = [n["node_id"] for n in tracer["nodes"]]
    assert len(ids) == len(set(ids)) == 5  # circuit-tracer's viewer keys nodes by node_id
    error = next(n for n in tracer["nodes"] if n["feature_type"] == "mlp reconstruction error")
    assert (error["node_id"], error["layer"], error["ctx_idx"], error["jsNodeId"]) == (
        "1_-1_2",
        "1",
        2,
        "1_2-0",
    )
    assert {(link["source"], link["target"]) for link in tracer["links"]} == {
        ("E_42_2", "0_1_2"),
        ("0_1_2", "1_7_2"),
        ("1_7_2", "3_5_2"),
        ("1_-1_2", "3_5_2"),
    }
