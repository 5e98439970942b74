"""Pruning a graph to the nodes and edges that matter for its logits, and the graph's scores.

Pruning (circuit-tracer's, Ameisen et al. 2025): keep the fewest nodes whose influence on the
logits (`saescope.circuit.graph`) adds up to `node_threshold` of the total (tokens and logits are
always kept); on the graph restricted to them, score each edge by its share of its target's
(normalised) inputs times the target's influence plus logit weight, and keep the fewest edges
adding up to `edge_threshold` of the total; then repeatedly drop latents and error nodes left
without an outgoing edge, and latents left without an incoming one.

Scores (circuit-tracer's `compute_graph_scores`):
- replacement score: the influence that reaches the logits from the token embeddings, as a share
  of the influence from embeddings and error nodes together — 1 when every path from the tokens
  to the logits runs through latents only;
- completeness score: over all nodes, the share of each node's (normalised) inputs that do not come
  from error nodes, weighted by the node's influence plus logit weight.

This module knows nothing about models or files.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .graph import AttributionGraph, influence, normalize_rows


class Pruned(NamedTuple):
    """Which nodes and edges a pruned graph keeps."""

    nodes: Tensor
    """[n] bool: kept nodes."""
    edges: Tensor
    """[n, n] bool: kept edges (target, source)."""
    influence: Tensor
    """[n] each node's influence on the logits (in the whole graph)."""
    cumulative: Tensor
    """[n] the share of all influence held by the nodes at least as influential as this one (what
    circuit-tracer's files call a node's `influence`)."""


class Scores(NamedTuple):
    """How much of the graph runs through latents rather than error nodes (module docstring)."""

    replacement: float
    """Influence from the token embeddings over influence from embeddings and error nodes."""
    completeness: float
    """Influence-weighted share of the nodes' inputs that come from non-error nodes."""


def threshold_of(scores: Tensor, share: float) -> float:
    """The score above which the fewest entries hold `share` of the total."""
    ordered = torch.sort(scores.flatten(), descending=True).values
    total = ordered.sum()
    if float(total) <= 0:
        return float("inf")
    cumulative = torch.cumsum(ordered, 0) / total
    index = min(int(torch.searchsorted(cumulative, torch.tensor(share))), ordered.shape[0] - 1)
    return float(ordered[index])


def _settle(graph: AttributionGraph, nodes: Tensor, edges: Tensor) -> None:
    """Drop latents/errors without outgoing edges and latents without incoming ones, until stable."""
    sources = torch.tensor([n.kind in ("latent", "error") for n in graph.nodes])
    latents = torch.tensor([n.kind == "latent" for n in graph.nodes])
    while True:
        before = nodes.clone()
        edges[~nodes] = False
        edges[:, ~nodes] = False
        nodes &= ~sources | edges.any(0)
        nodes &= ~latents | edges.any(1)
        if bool((nodes == before).all()):
            return


def prune(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruned:
    """The nodes and edges the pruned graph keeps (module docstring)."""
    weights = graph.logit_weights()
    scores = influence(normalize_rows(graph.adjacency), weights)
    always = torch.tensor([n.kind in ("embedding", "logit") for n in graph.nodes])
    nodes = (scores >= threshold_of(scores, node_threshold)) | always
    restricted = graph.adjacency.clone()
    restricted[~nodes] = 0
    restricted[:, ~nodes] = 0
    normalized = normalize_rows(restricted)
    edge_scores = normalized * (influence(normalized, weights) + weights)[:, None]
    edges = (edge_scores >= threshold_of(edge_scores, edge_threshold)) & (edge_scores > 0)
    _settle(graph, nodes, edges)
    ordered, order = torch.sort(scores, descending=True)
    cumulative = torch.zeros_like(scores)
    total = ordered.sum()
    cumulative[order] = torch.cumsum(ordered, 0) / total if float(total) > 0 else 0.0
    return Pruned(nodes, edges, scores, cumulative)


def graph_scores(graph: AttributionGraph) -> Scores:
    """The replacement and completeness scores of the whole (unpruned) graph."""
    weights = graph.logit_weights()
    normalized = normalize_rows(graph.adjacency)
    scores = influence(normalized, weights)
    errors, embeddings = graph.indices("error"), graph.indices("embedding")
    from_tokens, from_errors = float(scores[embeddings].sum()), float(scores[errors].sum())
    replacement = from_tokens / (from_tokens + from_errors) if from_tokens + from_errors > 0 else float("nan")
    not_error = 1 - normalized[:, errors].sum(dim=1)
    out = scores + weights
    completeness = float((not_error * out).sum() / out.sum()) if float(out.sum()) > 0 else float("nan")
    return Scores(replacement, completeness)


__all__ = ["Pruned", "Scores", "graph_scores", "prune", "threshold_of"]
