"""An attribution graph as a page: nodes laid out by layer (y) and token position (x), the kept
edges drawn by weight and sign, all as inline SVG, with the graph's scores and its validation.

    view = graph_view(document, "cat")          # document: `saescope circuit`'s NAME.json
    html = graph_page(view, GRAPH_PAGE_LINKS)    # a static dashboard's page
    body = graph_body(view, links, live=True)   # the server's page content (ablate and steer)

Layout: one row per layer, the token embeddings at the bottom and the output logits at the top;
one column per token position, as wide as its most crowded (layer, position) cell, whose nodes sit
side by side (most influential first, error nodes last). Only the nodes and edges pruning kept are
drawn (the graph file's `edges` are the kept ones). An edge's width grows with |weight| relative
to the graph's largest kept edge; its colour says its sign. The page's script (`graph.js`) reads
each node's facts from the embedded JSON and writes them with `textContent`; every string that
reaches the SVG is escaped by the template.

This module knows nothing about files, latent indexes, models or the web server.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from markupsafe import Markup

from ..example import Example
from .pages import Links, render

ROW_HEIGHT = 64
"""Pixels between two layers' rows."""
NODE_SPACING = 18
"""Pixels between two nodes of one (layer, position) cell."""
MIN_COLUMN = 56
"""The narrowest column of a token position (room for its label)."""
MARGIN_LEFT = 64
"""Room for the layers' labels."""
MARGIN = 24
"""Room above the logits' row and under the tokens' labels."""
TOKEN_LABEL = 12
"""Characters of a token shown under its column (the whole token on hover)."""
MAX_EDGE_WIDTH = 4.0
"""Stroke width of the largest kept edge."""
KIND_ORDER = {"logit": 0, "latent": 1, "embedding": 2, "error": 3}
"""Within a cell: logits, latents, embeddings, then error nodes."""


class GraphNodeView(NamedTuple):
    """A node where the page draws it."""

    key: str
    """Its key on the page, unique (`node_key`)."""
    id: str
    """The graph file's node id (unique; in files written before error nodes were `L_-1_P`, layer 0's
    latent L and layer L's error node at one position share it)."""
    kind: str
    """`latent`, `error`, `embedding` or `logit`."""
    layer: int
    """Its layer (−1 for embeddings, the number of layers for logits)."""
    position: int
    """Its token position."""
    feature: int
    """Latent id; token id for embeddings and logits; −1 for error nodes."""
    value: float
    """Activation; logit minus the mean logit; norm of an error's or an embedding's vector."""
    influence: float
    """Its share of the logits' inputs (the graph file's `influence`)."""
    label: str
    """A short label (`L1/17`, `error L2`, the token, the logit's token)."""
    explanation: str
    """The latent's explanation ("" when none)."""
    x: float
    """Horizontal centre (pixels)."""
    y: float
    """Vertical centre (pixels)."""


class GraphEdgeView(NamedTuple):
    """A kept edge where the page draws it."""

    source: str
    """Source node's key."""
    target: str
    """Target node's key."""
    weight: float
    """Direct effect of the source on the target (the graph file's weight)."""
    x1: float
    """Source centre, x."""
    y1: float
    """Source centre, y."""
    x2: float
    """Target centre, x."""
    y2: float
    """Target centre, y."""
    width: float
    """Stroke width (|weight| relative to the largest kept edge)."""


class TokenColumn(NamedTuple):
    """A token position's column."""

    position: int
    """The position."""
    token: str
    """The token as decoded."""
    x: float
    """Column centre."""
    left: float
    """Column's left edge."""


class LayerRow(NamedTuple):
    """A layer's row."""

    label: str
    """`logits`, `L0` …, `embeddings`."""
    y: float
    """Row centre."""


class LogitView(NamedTuple):
    """One output logit of the graph."""

    token: str
    """Its token."""
    probability: float
    """Its probability at the last position."""
    target: bool
    """Whether it is the graph's target (the first logit)."""


class CheckView(NamedTuple):
    """One node of the graph's validation: predicted and measured ablation effects."""

    node: str
    """The node's label."""
    influence: float
    """Its influence."""
    predicted: float
    """The graph's change of the target logit when the node is zeroed."""
    measured: float
    """The real model's change."""


class GraphView(NamedTuple):
    """What a graph page shows."""

    name: str
    """The graph's name (its files' stem)."""
    prompt: str
    """The prompt."""
    model: str
    """The language model."""
    method: str
    """`transcoders` or `sparse-feature-circuits`."""
    n_layers: int
    """Decoder layers."""
    nodes: tuple[GraphNodeView, ...]
    """The kept nodes."""
    edges: tuple[GraphEdgeView, ...]
    """The kept edges, weakest first (the strongest drawn on top)."""
    columns: tuple[TokenColumn, ...]
    """Token positions."""
    rows: tuple[LayerRow, ...]
    """Layers, top to bottom."""
    width: float
    """The drawing's width (pixels)."""
    height: float
    """The drawing's height (pixels)."""
    logits: tuple[LogitView, ...]
    """The output logits, the target first."""
    counts: dict[str, int]
    """`nodes`, `nodes_kept`, `edges_total`, `edges_kept`, `active_latents`."""
    scores: dict[str, float | None]
    """`replacement`, `completeness` (whole graph), `replacement_gap` (None when not measured)."""
    correlation: float | None
    """Pearson r of predicted and measured ablation effects (None: not measured)."""
    correlation_note: str
    """Why it is None, or the validation's absence."""
    correlation_outside_first: float | None
    """Pearson r over the checked nodes outside position 0 (BOS, the attention sink, whose
    ablation is far from linear); None when not measured or absent from an older file."""
    checks_outside_first: int
    """How many checked nodes that r is over."""
    checks: tuple[CheckView, ...]
    """The validation's nodes."""
    max_weight: float
    """The largest |weight| of a kept edge (what the widest edge stands for)."""

    def node_json(self) -> list[dict[str, Any]]:
        """The nodes as the page's script reads them."""
        return [n._asdict() for n in self.nodes]


class GraphRow(NamedTuple):
    """A saved graph in a run's list of graphs."""

    name: str
    """Its name."""
    prompt: str
    """Its prompt."""
    target: str
    """The target token, with its probability."""
    method: str
    """How it was built."""
    nodes: int
    """Nodes kept."""
    edges: int
    """Edges kept."""
    replacement: float | None
    """Replacement score (None when absent)."""
    correlation: float | None
    """Validation's Pearson r (None: not measured)."""


class NodeDetail(NamedTuple):
    """What hovering a latent node shows beyond its own facts: its index's top examples."""

    id: str
    """The node id."""
    explanation: str
    """The latent's explanation ("" when none)."""
    examples: tuple[Example, ...]
    """Its top examples in its dictionary's index (empty without one)."""
    scale: float
    """The activation a full shade stands for (the latent's maximum in the index)."""
    note: str
    """Why there are no examples ("" when there are)."""


def node_key(node: Mapping[str, Any]) -> str:
    """A node's key on a page: its id for a latent, `KIND:ID` for the others (ids are unique, but in
    files written before error nodes were `L_-1_P` layer 0's latent L at a position and layer L's
    error node there share one)."""
    return str(node["id"]) if node["kind"] == "latent" else f"{node['kind']}:{node['id']}"


def nodes_by_id(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A graph document's nodes by id, a latent's where an id is shared (only in older files, see
    `node_key`; edges and requests name nodes by id only)."""
    out: dict[str, Mapping[str, Any]] = {}
    for node in document.get("nodes", []):
        if node.get("kind") == "latent" or str(node.get("id")) not in out:
            out[str(node.get("id"))] = node
    return out


def _label(node: Mapping[str, Any], tokens: Sequence[str], logit_tokens: Mapping[str, str]) -> str:
    kind = node["kind"]
    if kind == "latent":
        return f"L{node['layer']}/{node['feature']}"
    if kind == "error":
        return f"error L{node['layer']}"
    if kind == "embedding":
        position = int(node["position"])
        return tokens[position] if 0 <= position < len(tokens) else str(node["feature"])
    return logit_tokens.get(str(node["id"]), f"token {node['feature']}")


def _cells(nodes: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], list[Mapping[str, Any]]]:
    cells: dict[tuple[int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for node in nodes:
        cells[(int(node["layer"]), int(node["position"]))].append(node)
    for members in cells.values():
        members.sort(key=lambda n: (KIND_ORDER.get(n["kind"], 9), -float(n.get("influence") or 0.0)))
    return cells


def _columns(
    cells: Mapping[tuple[int, int], list[Mapping[str, Any]]], tokens: Sequence[str]
) -> tuple[TokenColumn, ...]:
    widest: dict[int, int] = defaultdict(int)
    for (_, position), members in cells.items():
        widest[position] = max(widest[position], len(members))
    columns, left = [], float(MARGIN_LEFT)
    for position, token in enumerate(tokens):
        width = max(MIN_COLUMN, widest[position] * NODE_SPACING + NODE_SPACING)
        columns.append(TokenColumn(position, token, left + width / 2, left))
        left += width
    return tuple(columns)


def _row_y(layer: int, n_layers: int) -> float:
    return MARGIN + (n_layers - layer) * ROW_HEIGHT


def _rows(n_layers: int) -> tuple[LayerRow, ...]:
    rows = [LayerRow("logits", _row_y(n_layers, n_layers))]
    rows += [LayerRow(f"L{layer}", _row_y(layer, n_layers)) for layer in range(n_layers - 1, -1, -1)]
    return (*rows, LayerRow("embeddings", _row_y(-1, n_layers)))


def _placed(
    document: Mapping[str, Any], kept: Sequence[Mapping[str, Any]], logit_tokens: Mapping[str, str]
) -> tuple[tuple[GraphNodeView, ...], tuple[TokenColumn, ...]]:
    tokens = [str(t) for t in document.get("tokens", [])]
    n_layers = int(document["n_layers"])
    cells = _cells(kept)
    columns = _columns(cells, tokens)
    placed = []
    for (layer, position), members in cells.items():
        if not 0 <= position < len(columns):
            continue
        centre = columns[position].x
        for i, node in enumerate(members):
            x = centre + (i - (len(members) - 1) / 2) * NODE_SPACING
            placed.append(
                GraphNodeView(
                    node_key(node),
                    str(node["id"]),
                    str(node["kind"]),
                    layer,
                    position,
                    int(node["feature"]),
                    float(node.get("value") or 0.0),
                    float(node.get("influence") or 0.0),
                    _label(node, tokens, logit_tokens),
                    str(node.get("explanation") or ""),
                    x,
                    _row_y(layer, n_layers),
                )
            )
    return tuple(placed), columns


def _edges(
    document: Mapping[str, Any], nodes: Sequence[GraphNodeView]
) -> tuple[tuple[GraphEdgeView, ...], float]:
    by_key = {n.key: n for n in nodes}
    kept = {"nodes": [{"id": n.id, "kind": n.kind, "key": n.key} for n in nodes]}
    at = {node_id: by_key[str(node["key"])] for node_id, node in nodes_by_id(kept).items()}
    drawn = [e for e in document.get("edges", []) if e["source"] in at and e["target"] in at]
    largest = max((abs(float(e["weight"])) for e in drawn), default=0.0)
    edges = []
    for edge in sorted(drawn, key=lambda e: abs(float(e["weight"]))):
        source, target, weight = at[edge["source"]], at[edge["target"]], float(edge["weight"])
        width = 0.4 + (MAX_EDGE_WIDTH - 0.4) * abs(weight) / largest if largest > 0 else 0.4
        edges.append(
            GraphEdgeView(source.key, target.key, weight, source.x, source.y, target.x, target.y, width)
        )
    return tuple(edges), largest


def checked_node(document: Mapping[str, Any], reference: Any) -> Mapping[str, Any] | None:
    """The node a validation check names: by its index in the graph's nodes (a check's `index`;
    older files wrote it as `node`), or by id (a check's `node`)."""
    nodes = document.get("nodes", [])
    if isinstance(reference, int) and not isinstance(reference, bool):
        return nodes[reference] if 0 <= reference < len(nodes) else None
    return nodes_by_id(document).get(str(reference))


def _checks(document: Mapping[str, Any], logit_tokens: Mapping[str, str]) -> tuple[CheckView, ...]:
    validation = document.get("validation") or {}
    tokens = [str(t) for t in document.get("tokens", [])]
    out = []
    for c in validation.get("checks", []):
        node = checked_node(document, c.get("index", c["node"]))
        label = _label(node, tokens, logit_tokens) if node is not None else str(c["node"])
        if node is not None and node["kind"] != "logit":
            label += f" @{node['position']}"
        out.append(CheckView(label, float(c["influence"]), float(c["predicted"]), float(c["measured"])))
    return tuple(out)


def _logits(document: Mapping[str, Any], logit_tokens: Mapping[str, str]) -> tuple[LogitView, ...]:
    logits = [n for n in document.get("nodes", []) if n["kind"] == "logit"]
    return tuple(
        LogitView(
            logit_tokens.get(str(n["id"]), f"token {n['feature']}"),
            float(n.get("probability") or 0.0),
            i == 0,
        )
        for i, n in enumerate(logits)
    )


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def graph_view(
    document: Mapping[str, Any], name: str, logit_tokens: Mapping[str, str] | None = None
) -> GraphView:
    """The page of a graph document (`saescope circuit`'s NAME.json); `logit_tokens` maps a logit
    node's id to its token's text when the document does not say it (its nodes' `token`)."""
    tokens = {str(n["id"]): str(n["token"]) for n in document.get("nodes", []) if "token" in n}
    logit_tokens = {**(logit_tokens or {}), **tokens}
    kept = [n for n in document.get("nodes", []) if n.get("kept")]
    nodes, columns = _placed(document, kept, logit_tokens)
    edges, largest = _edges(document, nodes)
    n_layers = int(document["n_layers"])
    validation = document.get("validation")
    scores = document.get("scores") or {}
    right = columns[-1].left + 2 * (columns[-1].x - columns[-1].left) if columns else MARGIN_LEFT
    return GraphView(
        name=name,
        prompt=str(document.get("prompt", "")),
        model=str(document.get("model", "")),
        method=str(document.get("method", "")),
        n_layers=n_layers,
        nodes=nodes,
        edges=edges,
        columns=columns,
        rows=_rows(n_layers),
        width=right + MARGIN,
        height=_row_y(-1, n_layers) + 2 * MARGIN + 12,
        logits=_logits(document, logit_tokens),
        counts={
            "nodes": len(document.get("nodes", [])),
            "nodes_kept": len(kept),
            "edges_total": int(document.get("edges_total", 0)),
            "edges_kept": len(document.get("edges", [])),
            "active_latents": int(document.get("active_latents", 0)),
        },
        scores={
            "replacement": _optional(scores.get("replacement")),
            "completeness": _optional(scores.get("completeness")),
            "replacement_gap": _optional(document.get("replacement_gap")),
        },
        correlation=_optional((validation or {}).get("correlation")),
        correlation_note=str((validation or {}).get("correlation_note", ""))
        if validation
        else "not measured (built with --validate 0)",
        correlation_outside_first=_optional((validation or {}).get("correlation_outside_position_0")),
        checks_outside_first=int((validation or {}).get("checks_outside_position_0") or 0),
        checks=_checks(document, logit_tokens),
        max_weight=largest,
    )


def graph_row(
    document: Mapping[str, Any], name: str, logit_tokens: Mapping[str, str] | None = None
) -> GraphRow:
    """A graph's row in the list of a run's graphs."""
    view = graph_view(document, name, logit_tokens)
    target = view.logits[0] if view.logits else None
    return GraphRow(
        name,
        view.prompt,
        f"{target.token!r} (p={target.probability:.3f})" if target else "",
        view.method,
        view.counts["nodes_kept"],
        view.counts["edges_kept"],
        view.scores["replacement"],
        view.correlation,
    )


def graph_body(
    view: GraphView,
    links: Links,
    live: bool,
    details: Mapping[str, NodeDetail] | None = None,
    detail_url: str = "",
    edit_url: str = "",
) -> Markup:
    """A graph's content without the page around it. `live`: the server's page, which ablates and
    steers nodes through `edit_url` and fetches a node's examples from `detail_url` + `/ID`; a
    static page carries each latent's `details` instead and says that it cannot edit."""
    return Markup(
        render(
            "graph_body.html",
            view=view,
            links=links,
            live=live,
            details=dict(details or {}),
            detail_url=detail_url,
            edit_url=edit_url,
            node_detail_fragment=node_detail_fragment,
        )
    )


def graph_page(view: GraphView, links: Links, details: Mapping[str, NodeDetail], list_href: str) -> str:
    """A whole static page of a graph (a dashboard's `graphs/NAME.html`)."""
    return render(
        "graph.html",
        view=view,
        links=links,
        details=dict(details),
        list_href=list_href,
        graph_body=graph_body,
    )


def graph_list_body(rows: Sequence[GraphRow], href: str, empty: str) -> Markup:
    """The table of a run's graphs, each linking to `href` with `{}` standing for its name."""
    return Markup(render("graph_list_body.html", rows=list(rows), href=href, empty=empty))


def graph_list_page(rows: Sequence[GraphRow], links: Links, title: str) -> str:
    """A whole static list of graphs (a dashboard's `graphs/index.html`)."""
    return render(
        "graph_list.html", rows=list(rows), links=links, title=title, graph_list_body=graph_list_body
    )


def node_detail_fragment(detail: NodeDetail) -> Markup:
    """A latent node's explanation and top examples (what hovering it shows)."""
    return Markup(render("graph_node.html", detail=detail))


__all__ = [
    "CheckView",
    "GraphEdgeView",
    "GraphNodeView",
    "GraphRow",
    "GraphView",
    "LayerRow",
    "LogitView",
    "NodeDetail",
    "TokenColumn",
    "checked_node",
    "graph_body",
    "graph_list_body",
    "graph_list_page",
    "graph_page",
    "graph_row",
    "graph_view",
    "node_detail_fragment",
    "node_key",
    "nodes_by_id",
]
