"""An attribution graph, and the influence of its nodes on the output.

Nodes come in circuit-tracer's order: latents (by layer, position, latent), error nodes (by layer,
then position), token embeddings (by position), output logits (the target first). `adjacency[t, s]`
is the direct linear effect of source s on target t — on a latent's pre-activation, or on a logit
(minus the mean logit over the vocabulary, as circuit-tracer reads logits) — already multiplied by
the source's value, so a target's incoming edges, plus its `constants` entry (what no node carries:
biases), plus its `unkept` entry (the summed effect of the active latents the graph leaves out)
add up to its value. Error nodes and embeddings have no incoming edges.

Influence (Ameisen et al. 2025, circuit-tracer's definition): with Â the adjacency's absolute
values, each row normalised to sum to 1, and w the logits' probabilities, a node's influence is
its entry in w·(Â + Â² + Â³ + …) — the share of the logits' (probability-weighted) inputs that
flows through it along any path. The series ends because the graph has no cycles.

This module knows nothing about models, dictionaries or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

NodeKind = Literal["latent", "error", "embedding", "logit"]
MAX_DEPTH = 10_000
"""More path lengths than any graph has layers: the influence series must end before it."""


class Node(NamedTuple):
    """One node of a graph."""

    kind: NodeKind
    """`latent`, `error`, `embedding` or `logit`."""
    layer: int
    """Decoder layer of a latent or error node (the layer its dictionary reads); -1 for an embedding;
    the number of layers for a logit."""
    position: int
    """Token position (a logit: the last position)."""
    feature: int
    """Latent id; token id for an embedding or a logit; -1 for an error node."""
    value: float
    """A latent's activation, a logit's value (minus the mean logit), the norm of an error's or an
    embedding's vector."""


@dataclass(frozen=True)
class AttributionGraph:
    """A graph of direct effects on one prompt (see the module docstring)."""

    method: Literal["transcoders", "sparse-feature-circuits"]
    """How it was built: transcoders' local replacement model, or residual SAEs by attribution
    patching (Marks et al. 2024)."""
    model: str
    """The language model."""
    prompt: str
    """The prompt as given."""
    tokens: tuple[str, ...]
    """Its tokens, each decoded on its own."""
    token_ids: tuple[int, ...]
    """Its token ids."""
    nodes: tuple[Node, ...]
    """Every node, in the order of the module docstring."""
    adjacency: Tensor
    """[n, n] float32: adjacency[target, source], the direct effect of source on target."""
    constants: Tensor
    """[n] what a target's value holds besides its incoming edges (biases); NaN for nodes without
    incoming edges."""
    unkept: Tensor
    """[n] the summed direct effect on each target of the active latents not kept in the graph
    (0 when every active latent is kept; NaN for nodes without incoming edges)."""
    logit_probabilities: Tensor
    """[n_logits] each logit node's probability (the target's first)."""
    n_layers: int
    """Decoder layers of the model."""
    dictionaries: tuple[str, ...]
    """The dictionaries' folders or names, by layer."""
    active_latents: int
    """Latents active on the prompt; the graph keeps the `len(latent nodes)` most influential."""
    logit_tokens: tuple[str, ...] = ()
    """The logit nodes' tokens as text (when the builder's caller decoded them)."""

    def indices(self, kind: NodeKind) -> Tensor:
        """The node indices of one kind, in order."""
        return torch.tensor([i for i, n in enumerate(self.nodes) if n.kind == kind], dtype=torch.long)

    def logit_token_ids(self) -> list[int]:
        """The logit nodes' token ids, the target first."""
        return [n.feature for n in self.nodes if n.kind == "logit"]

    @property
    def n_logits(self) -> int:
        return int(self.logit_probabilities.shape[0])

    def logit_weights(self) -> Tensor:
        """[n] the logits' probabilities at their nodes, 0 elsewhere."""
        weights = torch.zeros(len(self.nodes))
        weights[self.indices("logit")] = self.logit_probabilities.float()
        return weights


def normalize_rows(matrix: Tensor) -> Tensor:
    """|matrix| with each row scaled to sum to 1 (rows of zeros stay zero)."""
    absolute = matrix.abs()
    return absolute / absolute.sum(dim=1, keepdim=True).clamp(min=1e-10)


def influence(normalized: Tensor, weights: Tensor) -> Tensor:
    """weights·(Â + Â² + …) for a row-normalised acyclic `normalized` [n, n] (see the module docstring)."""
    current = weights @ normalized
    total = current.clone()
    for _ in range(MAX_DEPTH):
        if not bool(current.any()):
            return total
        current = current @ normalized
        total += current
    raise RuntimeError("the influence series did not end: the graph has a cycle")


def partial_influence(rows: Tensor, row_nodes: Tensor, seed: Tensor) -> Tensor:
    """Influence over the columns of `rows` [R, C] when only the nodes `row_nodes` [R] (indices in
    a node space of size `seed.shape[0]` ≥ C) have their incoming edges computed; `seed` holds the
    logits' probabilities. What decides which latent's edges to compute next."""
    normalized = normalize_rows(rows)
    current = seed.clone()
    total = torch.zeros(rows.shape[1])
    for _ in range(MAX_DEPTH):
        step = current[row_nodes] @ normalized
        if not bool(step.any()):
            return total
        total += step
        current = torch.zeros_like(seed)
        current[: step.shape[0]] = step
    raise RuntimeError("the influence series did not end: the graph has a cycle")


def node_influence(graph: AttributionGraph) -> Tensor:
    """[n] each node's influence on the logits (module docstring)."""
    return influence(normalize_rows(graph.adjacency), graph.logit_weights())


__all__ = [
    "AttributionGraph",
    "Node",
    "NodeKind",
    "influence",
    "node_influence",
    "normalize_rows",
    "partial_influence",
]
