"""A graph checked against the real model: what the graph predicts ablating a node does to the
target logit, beside what ablating it in the real model does.

For each of the most influential nodes (latents, error nodes, embeddings; by `node_influence`):

- predicted: the change of the target logit (minus the mean logit, as the graph reads logits)
  when the node is set to zero in the graph — its edges carry −(its contribution) to the nodes it
  feeds, each latent there moves by the change of its pre-activation (it stays active: the graph
  is linear), and so on along every path to the target (error nodes and embeddings are fixed);
- measured: the same change in the REAL model (its own MLPs, attention and norms, nothing
  frozen), the node's vector subtracted where it writes (a transcoder latent: activation ×
  decoder row from its layer's MLP output; an SAE latent: from the residual stream its SAE reads;
  an error node: its error vector there; an embedding: the token's embedding);
- direct: minus the node's direct edge to the target, for reference.

Their Pearson correlation over the checked nodes is the graph's headline check: it can come out
low (a graph whose latents' effects go through nonlinearities the replacement model freezes). It is
given twice, over every checked node and over the checked nodes outside position 0: position 0
(BOS, when the tokenizer has one) is the attention sink, whose ablation in the real model is far
from linear — circuit-tracer (`ReplacementModel.setup_attribution`, `zero_bos=True` by default)
zeroes the transcoder activations and error vectors at a leading special token, so its graphs have
no nodes there to check; saescope keeps them in the graph and in the check, and reports both.

This module knows nothing about how graphs are built or saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..hooks import adding, patch_activations
from ..stats import pearson
from .graph import AttributionGraph, node_influence

NOT_MEASURED = "not measured (fewer than two nodes checked, or no variation)"
"""What the correlation says when it cannot be computed."""


class NodeEdits(NamedTuple):
    """Where each non-logit node of a graph writes into the real model, and what (in node order)."""

    sites: tuple[str, ...]
    """The hookpoint (a module path, or `PATH:input`) whose activation holds the node's vector."""
    positions: tuple[int, ...]
    """The token position."""
    vectors: Tensor
    """[n_nodes − n_logits, d] the node's vector there."""


class NodeCheck(NamedTuple):
    """One node ablated in the graph and in the real model."""

    node: int
    """Its index in the graph."""
    influence: float
    """Its influence on the logits (the ranking)."""
    predicted: float
    """The graph's change of the target logit when the node is ablated."""
    measured: float
    """The real model's change of the target logit when the node is ablated."""
    direct: float
    """Minus its direct edge to the target logit."""
    position: int
    """Its token position (0: BOS when the tokenizer has one, the attention sink)."""


class Validation(NamedTuple):
    """The graph's predictions beside the real model's measurements."""

    target: int
    """The token id of the logit checked (the graph's first logit node)."""
    checks: list[NodeCheck]
    """The nodes checked, most influential first."""
    correlation: float | None
    """Pearson correlation of predicted and measured over every check (None: `NOT_MEASURED`)."""
    correlation_outside_first: float | None
    """The same over the checks at positions after 0, the attention sink's (None: `NOT_MEASURED`)."""


def predicted_ablations(graph: AttributionGraph, nodes: Sequence[int]) -> Tensor:
    """[len(nodes)] the graph's change of its first logit when each of `nodes` is set to zero."""
    adjacency = graph.adjacency
    latents = graph.indices("latent")
    values = torch.tensor([graph.nodes[i].value for i in latents.tolist()])
    through = torch.zeros_like(adjacency)
    through[:, latents] = adjacency[:, latents] / values.clamp_min(1e-12)
    start = -adjacency[:, list(nodes)]  # [n, k]
    change = start.clone()
    for _ in range(graph.n_layers + 2):
        updated = start + through @ change
        if torch.allclose(updated, change, rtol=0, atol=0):
            break
        change = updated
    target = int(graph.indices("logit")[0])
    return change[target]


def _demeaned(logits: Tensor, token: int) -> Tensor:
    return logits[:, token] - logits.mean(dim=-1)


@torch.no_grad()
def measured_ablations(
    model: Any, token_ids: Sequence[int], edits: NodeEdits, nodes: Sequence[int], token: int
) -> Tensor:
    """[len(nodes)] the real model's change of `token`'s logit (minus the mean logit) at the last
    position when each node's vector is subtracted where it writes: one forward pass, the clean
    prompt in row 0 and one row per node, logits computed at the last position only."""
    if not nodes:
        return torch.zeros(0)
    device = next(model.parameters()).device
    batch = len(nodes) + 1
    deltas: dict[str, Tensor] = {}
    for row, node in enumerate(nodes, start=1):
        site, pos = edits.sites[node], edits.positions[node]
        vector = edits.vectors[node]
        if site not in deltas:
            deltas[site] = torch.zeros(batch, len(token_ids), vector.shape[-1])
        deltas[site][row, pos] -= vector
    with contextlib.ExitStack() as stack:
        for site, delta in deltas.items():
            stack.enter_context(patch_activations(model, site, adding(delta.to(device))))
        ids = torch.tensor([list(token_ids)], device=device).expand(batch, -1)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=1)
    logits = _demeaned(out.logits[:, -1].float(), token).cpu()
    return logits[1:] - logits[0]


def validate(graph: AttributionGraph, edits: NodeEdits, model: Any, top: int) -> Validation:
    """Ablate the `top` most influential non-logit nodes in the graph and in the real model."""
    influence = node_influence(graph)
    candidates = torch.tensor([i for i, n in enumerate(graph.nodes) if n.kind != "logit"], dtype=torch.long)
    order = candidates[torch.argsort(influence[candidates], descending=True)][:top].tolist()
    target_node = int(graph.indices("logit")[0])
    token = graph.nodes[target_node].feature
    predicted = predicted_ablations(graph, order).tolist() if order else []
    measured = measured_ablations(model, graph.token_ids, edits, order, token).tolist()
    checks = [
        NodeCheck(
            node,
            float(influence[node]),
            p,
            m,
            -float(graph.adjacency[target_node, node]),
            graph.nodes[node].position,
        )
        for node, p, m in zip(order, predicted, measured)
    ]
    return Validation(token, checks, pearson(predicted, measured), correlation_outside_first(checks))


def correlation_outside_first(checks: Sequence[NodeCheck]) -> float | None:
    """Pearson correlation of predicted and measured over exactly the checks at positions after 0
    (None: `NOT_MEASURED`, e.g. fewer than two of them)."""
    later = [c for c in checks if c.position > 0]
    return pearson([c.predicted for c in later], [c.measured for c in later])


__all__ = [
    "NOT_MEASURED",
    "NodeCheck",
    "NodeEdits",
    "Validation",
    "correlation_outside_first",
    "measured_ablations",
    "predicted_ablations",
    "validate",
]
