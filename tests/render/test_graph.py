"""An attribution graph's page view from a hand-made graph document: layout by layer and position,
edges by weight and sign, ids that circuit-tracer's scheme makes ambiguous, hostile text escaped,
and a static page that says it cannot ablate."""

from __future__ import annotations

from typing import Any

from saescope.render import STATIC_LATENT_LINKS
from saescope.render.graph import graph_page, graph_row, graph_view

from .html_checks import unsafe_markup

HOSTILE = "<img src=x onerror=alert(1)>"


def document() -> dict[str, Any]:
    """Two layers, three positions; layer 0's latent 1 at position 2 and layer 1's error node there
    share the id `0_1_2`, as in graph files written before error nodes were `LAYER_-1_POS`."""
    nodes = [
        {
            "id": "0_1_2",
            "kind": "latent",
            "layer": 0,
            "position": 2,
            "feature": 1,
            "value": 2.0,
            "influence": 0.5,
            "kept": True,
            "explanation": HOSTILE,
        },
        {
            "id": "1_7_2",
            "kind": "latent",
            "layer": 1,
            "position": 2,
            "feature": 7,
            "value": 1.0,
            "influence": 0.3,
            "kept": True,
        },
        {
            "id": "1_8_1",
            "kind": "latent",
            "layer": 1,
            "position": 1,
            "feature": 8,
            "value": 1.0,
            "influence": 0.0,
            "kept": False,
        },
        {
            "id": "0_1_2",
            "kind": "error",
            "layer": 1,
            "position": 2,
            "feature": -1,
            "value": 0.1,
            "influence": 0.1,
            "kept": True,
        },
        {
            "id": "E_5_0",
            "kind": "embedding",
            "layer": -1,
            "position": 0,
            "feature": 5,
            "value": 1.0,
            "influence": 0.2,
            "kept": True,
        },
        {
            "id": "3_9_2",
            "kind": "logit",
            "layer": 2,
            "position": 2,
            "feature": 9,
            "value": 0.4,
            "influence": 0.0,
            "kept": True,
            "probability": 0.6,
            "token": HOSTILE,
        },
    ]
    edges = [
        {"source": "0_1_2", "target": "1_7_2", "weight": 2.0},
        {"source": "1_7_2", "target": "3_9_2", "weight": -0.5},
        {"source": "E_5_0", "target": "0_1_2", "weight": 1.0},
    ]
    return {
        "format": "saescope-attribution-graph",
        "method": "transcoders",
        "model": "tiny",
        "prompt": HOSTILE,
        "tokens": ["<bos>", "a", HOSTILE],
        "token_ids": [0, 1, 2],
        "n_layers": 2,
        "nodes": nodes,
        "edges": edges,
        "edges_total": 9,
        "active_latents": 3,
        "scores": {"replacement": 0.8, "completeness": 0.9},
        "replacement_gap": 1e-6,
        "validation": {
            "correlation": None,
            "correlation_note": "not measured (fewer than two nodes)",
            "checks": [{"node": 0, "influence": 0.5, "predicted": -0.2, "measured": -0.1}],
        },
    }


def test_nodes_sit_by_layer_and_position_and_edges_by_weight() -> None:
    view = graph_view(document(), "g")
    at = {n.key: n for n in view.nodes}
    assert len(view.nodes) == 5  # the unkept latent is left out
    assert at["0_1_2"].y > at["1_7_2"].y > at["logit:3_9_2"].y  # lower layers lower on the page
    assert at["embedding:E_5_0"].y > at["0_1_2"].y
    assert at["embedding:E_5_0"].x < at["0_1_2"].x  # position 0 left of position 2
    assert (
        at["1_7_2"].x != at["error:0_1_2"].x and at["1_7_2"].y == at["error:0_1_2"].y
    )  # one cell, side by side
    widths = {(e.source, e.target): e.width for e in view.edges}
    assert (
        widths[("0_1_2", "1_7_2")] > widths[("embedding:E_5_0", "0_1_2")] > widths[("1_7_2", "logit:3_9_2")]
    )
    assert view.max_weight == 2.0 and [e.weight for e in view.edges][-1] == 2.0  # strongest drawn last
    assert view.checks[0].node == "L0/1 @2" and view.logits[0].token == HOSTILE


def test_a_check_names_its_node_by_index_where_an_old_file_shares_the_id() -> None:
    old = document()
    old["validation"]["checks"] = [
        {"node": "0_1_2", "index": 3, "influence": 0.1, "predicted": -0.2, "measured": -0.1}
    ]
    assert graph_view(old, "g").checks[0].node == "error L1 @2"  # not layer 0's latent, which shares it


def test_unique_ids_need_no_kinds() -> None:
    """`saescope circuit`'s ids: the error node is `1_-1_2`, every edge names one node."""
    new = document()
    new["nodes"][3]["id"] = "1_-1_2"
    new["edges"].append({"source": "1_-1_2", "target": "3_9_2", "weight": 0.25})
    new["validation"]["checks"] = [
        {"node": "1_-1_2", "index": 3, "influence": 0.1, "predicted": -0.2, "measured": -0.1}
    ]
    view = graph_view(new, "g")
    assert ("error:1_-1_2", "logit:3_9_2") in {(e.source, e.target) for e in view.edges}
    assert ("0_1_2", "1_7_2") in {(e.source, e.target) for e in view.edges}
    assert view.checks[0].node == "error L1 @2"


def test_the_static_page_escapes_and_says_it_cannot_ablate() -> None:
    view = graph_view(document(), "g")
    html = graph_page(view, STATIC_LATENT_LINKS, {}, "index.html")
    assert [f for f in unsafe_markup(html) if f not in {"<g>", "<line>", "<title>"}] == []
    assert "This is a static page" in html and 'id="run-edit"' not in html
    assert 'class="edge pos"' in html and 'class="edge neg"' in html
    assert "not measured (fewer than two nodes)" in html  # no correlation: said, not invented


def test_a_graph_row() -> None:
    row = graph_row(document(), "g")
    assert (row.nodes, row.edges, row.correlation) == (5, 3, None)
    assert row.target.endswith("(p=0.600)")


def test_the_page_gives_the_correlation_outside_position_0_beside_the_whole() -> None:
    measured = document()
    measured["validation"] |= {
        "correlation": 0.444,
        "correlation_outside_position_0": 0.78,
        "checks_outside_position_0": 14,
    }
    html = graph_page(graph_view(measured, "g"), STATIC_LATENT_LINKS, {}, "index.html")
    assert "Pearson r = 0.444 over 1 ablated nodes; over the 14 outside position 0" in html
    assert "r = 0.780" in html
    # a file without the second correlation (older, or not measured) shows only the first
    del measured["validation"]["correlation_outside_position_0"]
    html = graph_page(graph_view(measured, "g"), STATIC_LATENT_LINKS, {}, "index.html")
    assert "Pearson r = 0.444 over 1 ablated nodes" in html and "outside position 0" not in html
