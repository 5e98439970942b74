"""A graph on disk: saescope's own JSON (+ the full matrices in safetensors) and circuit-tracer's
graph JSON, which circuit-tracer's viewer and Neuronpedia open.

saescope's files (documented in docs/formats.md, "Attribution graphs"):
- `NAME.json`: the prompt, every node (id — unique, `node_id` —, index in the node order, kind,
  layer, position, feature, value, influence, cumulative influence, whether pruning kept it, a
  logit's decoded token, an explanation when the index has one), the kept edges (source and target
  by id), the scores, the pruning thresholds, the validation against the real model (each checked
  node by id and by index), the per-head splits, the settings;
- `NAME.safetensors`: `adjacency` [n, n], `constants` [n], `unkept` [n], `logit_probabilities`
  — every edge, not only the kept ones (the JSON's node order);
- `NAME.circuit-tracer.json`: circuit-tracer's graph file (`metadata`, `qParams`, `nodes` with
  `node_id`, `feature`, `layer`, `ctx_idx`, `feature_type`, `token_prob`, `is_target_logit`,
  `jsNodeId`, `clerp`, `influence` (the cumulative share, as circuit-tracer writes it),
  `activation`; `links` with `source`, `target`, `weight`), pruned as circuit-tracer prunes, and
  the folder's `graph-metadata.json` lists it (circuit-tracer's local server reads that list).

This module knows nothing about how graphs are built or checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..files import read_json, write_json
from .graph import AttributionGraph, Node
from .prune import Pruned

FORMAT = "saescope-attribution-graph"
VERSION = 1
GRAPH_LIST = "graph-metadata.json"
"""circuit-tracer's list of the graphs in a folder."""


def node_id(node: Node, n_layers: int) -> str:
    """A node's id, in both files: `LAYER_LATENT_POS` for a latent, `LAYER_-1_POS` for an error
    node, `E_TOKEN_POS` for an embedding, `LAYERS+1_TOKEN_POS` for a logit — circuit-tracer's scheme
    since its error nodes stopped being `0_LAYER_POS` (which layer 0's latent LAYER at POS shares)."""
    if node.kind == "latent":
        return f"{node.layer}_{node.feature}_{node.position}"
    if node.kind == "error":
        return f"{node.layer}_-1_{node.position}"
    if node.kind == "embedding":
        return f"E_{node.feature}_{node.position}"
    return f"{n_layers + 1}_{node.feature}_{node.position}"


def node_ids(graph: AttributionGraph) -> list[str]:
    """Every node's id (`node_id`), in node order; they are unique (a graph whose dictionaries share a
    layer would break that, and its builder refuses it), which this checks."""
    ids = [node_id(n, graph.n_layers) for n in graph.nodes]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(
            f"node ids repeat ({', '.join(repeated[:3])}): two nodes share a layer, position and id"
        )
    return ids


def shown(token: str) -> str:
    """A token as circuit-tracer shows it (newline, tab, carriage return made visible)."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _feature_type(graph: AttributionGraph, node: Node) -> str:
    if node.kind == "latent":
        return "cross layer transcoder" if graph.method == "transcoders" else "sae latent"
    if node.kind == "error":
        return "mlp reconstruction error" if graph.method == "transcoders" else "sae reconstruction error"
    return node.kind


def circuit_tracer_json(
    graph: AttributionGraph,
    pruned: Pruned,
    slug: str,
    node_threshold: float,
    explanations: Mapping[tuple[int, int], str],
    token_text: Mapping[int, str],
) -> dict[str, Any]:
    """circuit-tracer's graph file (see the module docstring); `explanations` maps (layer, latent)
    to a latent's explanation (its `clerp`), `token_text` a logit's token id to its text."""
    nodes: list[dict[str, Any]] = []
    ids = node_ids(graph)
    target = int(graph.indices("logit")[0])
    probabilities = dict(zip(graph.indices("logit").tolist(), graph.logit_probabilities.tolist()))
    for i, node in enumerate(graph.nodes):
        if not bool(pruned.nodes[i]):
            continue
        entry: dict[str, Any] = {
            "node_id": ids[i],
            "feature": node.feature if node.kind != "embedding" else node.position,
            "layer": "E"
            if node.kind == "embedding"
            else str(node.layer if node.kind != "logit" else graph.n_layers + 1),
            "ctx_idx": node.position,
            "feature_type": _feature_type(graph, node),
            "token_prob": float(probabilities.get(i, 0.0)),
            "is_target_logit": i == target,
            "run_idx": 0,
            "reverse_ctx_idx": 0,
            "jsNodeId": _js_id(node, ids[i]),
            "clerp": _clerp(node, probabilities.get(i, 0.0), explanations, token_text),
            "influence": float(pruned.cumulative[i]) if node.kind != "logit" else None,
            "activation": node.value if node.kind == "latent" else None,
        }
        nodes.append(entry)
    targets, sources = torch.nonzero(pruned.edges, as_tuple=True)
    links = [
        {"source": ids[s], "target": ids[t], "weight": float(graph.adjacency[t, s])}
        for t, s in zip(targets.tolist(), sources.tolist())
    ]
    metadata = {
        "slug": slug,
        "scan": f"saescope-{Path(graph.model).name}",
        "transcoder_list": list(graph.dictionaries),
        "prompt_tokens": [shown(t) for t in graph.tokens],
        "prompt": graph.prompt,
        "node_threshold": node_threshold,
    }
    q_params = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": q_params, "nodes": nodes, "links": links}


def _js_id(node: Node, nid: str) -> str:
    if node.kind == "latent":
        return f"{node.layer}_{node.feature}-0"
    if node.kind == "error":
        return f"{node.layer}_{node.position}-0"
    if node.kind == "embedding":
        return f"E_{node.feature}-{node.position}"
    return f"L_{node.feature}-{node.position}" if nid else ""


def _clerp(
    node: Node, probability: float, explanations: Mapping[tuple[int, int], str], token_text: Mapping[int, str]
) -> str:
    if node.kind == "logit":
        return f'Output "{shown(token_text.get(node.feature, str(node.feature)))}" (p={probability:.3f})'
    if node.kind == "latent":
        return explanations.get((node.layer, node.feature), "")
    return ""


def add_to_graph_list(folder: Path, metadata: Mapping[str, Any]) -> None:
    """Add (or replace, by slug) a graph's metadata in the folder's `graph-metadata.json`."""
    path = folder / GRAPH_LIST
    listing = read_json(path) if path.is_file() else {"graphs": []}
    graphs = [g for g in listing.get("graphs", []) if g.get("slug") != metadata["slug"]]
    write_json(path, {"graphs": [*graphs, dict(metadata)]})


def save_matrices(graph: AttributionGraph, path: Path) -> None:
    """The graph's full matrices as safetensors (see the module docstring)."""
    save_file(
        {
            "adjacency": graph.adjacency.contiguous(),
            "constants": graph.constants.contiguous(),
            "unkept": graph.unkept.contiguous(),
            "logit_probabilities": graph.logit_probabilities.float().contiguous(),
        },
        str(path),
    )


def load_matrices(path: Path) -> dict[str, torch.Tensor]:
    """What `save_matrices` wrote."""
    return load_file(str(path))


def write_graph_json(path: Path, document: Mapping[str, Any]) -> None:
    """A graph document as JSON (no NaN: JSON has none; they are written as null)."""
    path.write_text(json.dumps(_no_nan(document), ensure_ascii=False), encoding="utf-8")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


__all__ = [
    "FORMAT",
    "GRAPH_LIST",
    "VERSION",
    "add_to_graph_list",
    "circuit_tracer_json",
    "load_matrices",
    "node_id",
    "node_ids",
    "save_matrices",
    "shown",
    "write_graph_json",
]
