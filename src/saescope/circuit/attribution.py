"""Attribution graphs from transcoders (Ameisen et al. 2025): direct linear effects between the
nodes of a prompt's local replacement model, by batched backward passes.

Every decoder layer's MLP is replaced by its transcoder plus an error node per position (the
replacement model of `saescope.circuit.frozen`, errors frozen). In that model a target's value —
a latent's pre-activation, or a logit minus the mean logit — is affine in the sources: the token
embeddings, each active latent's activation times its decoder row, and each error vector. One
backward pass from a batch of targets (each batch row reads its own target: its encoder row at its
layer and position, or its demeaned unembedding row at the last position) gives the gradient at
every source site, and the edge from source s is s's vector · that gradient. The pass is the
replacement model's linear map transposed by hand (`LinearReplacement.backward`), each layer's
sources read as the gradient comes down; `autograd_rows` computes the same rows with a forward run
and torch's autograd, the reference the tests hold it to. One forward run with every source at
zero gives every target's constant term (the transcoders' `b_dec` and any attention biases,
carried through the frozen model, plus the target's own encoder bias).

As circuit-tracer does, the logits' rows come first (the target token, or the top tokens until
`logit_probability` of the probability, at most `max_logits`); then latents' rows in order of
their influence on the logits so far (re-ranked every `update_interval` batches), until
`max_feature_nodes` latents have theirs. The graph keeps those latents; the others' effects stay
in the rows computed before they were dropped only as missing columns.

This module knows nothing about files, pruning or the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .frozen import FrozenPrompt, LinearReplacement, freeze_prompt, llama_layers
from .graph import AttributionGraph, Node, partial_influence
from .latents import ActiveLatents, active_transcoder_latents, mlp_injections
from .validation import NodeEdits

log = logging.getLogger(__name__)


class GraphSettings(NamedTuple):
    """How much of the graph to compute."""

    max_logits: int = 10
    """Logit nodes at most (without a target)."""
    logit_probability: float = 0.95
    """Without a target: the top tokens until this much of the probability."""
    max_feature_nodes: int = 500
    """Latents whose incoming edges are computed (the most influential first)."""
    batch_size: int = 64
    """Targets per backward pass."""
    update_interval: int = 4
    """Batches between re-rankings of the latents by influence."""


class Targets(NamedTuple):
    """A batch of targets: each reads `vectors[b]` · (the replacement model's value at its site)."""

    layers: Tensor
    """[B] decoder layer whose normalised MLP input is read; the number of layers: the final norm's output."""
    positions: Tensor
    """[B] token position."""
    vectors: Tensor
    """[B, d] what is read there (an encoder row; a demeaned unembedding row)."""


class Rows(NamedTuple):
    """Incoming edges of a batch of targets."""

    edges: Tensor
    """[B, C] the effect of every source (latents, errors, embeddings) on each target."""
    constants: Tensor
    """[B] each target's value with every source at zero (biases carried through the model)."""


class Sources(NamedTuple):
    """The sources of the replacement model on one prompt."""

    latents: ActiveLatents
    """Every active latent."""
    errors: Tensor
    """[L, T, d] each layer's error."""
    embeddings: Tensor
    """[T, d] token embeddings."""

    @property
    def columns(self) -> int:
        """Sources in all: latents, then errors by (layer, position), then embeddings."""
        n_layers, n_pos = self.errors.shape[:2]
        return self.latents.size + n_layers * n_pos + n_pos


def _read_targets(sites: Any, targets: Targets, n_layers: int) -> Tensor:
    values = torch.zeros(targets.layers.shape[0])
    parts: list[Tensor] = []
    order: list[Tensor] = []
    for layer in targets.layers.unique().tolist():
        rows = torch.nonzero(targets.layers == layer).flatten()
        site = sites.final if layer == n_layers else sites.mlp_in[layer]
        parts.append((site[rows, targets.positions[rows]] * targets.vectors[rows]).sum(-1))
        order.append(rows)
    if not parts:
        return values
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(parts)[inverse]


class Prepared(NamedTuple):
    """What every batch of targets reuses: the latents grouped by site, and the constants."""

    decoders: Tensor
    """[L·T, K, d] the scaled decoder rows of the latents at each (layer, position) site, padded
    with zeros to the most latents at one site (K)."""
    site: Tensor
    """[N] each latent's site (layer · T + position)."""
    slot: Tensor
    """[N] its place among its site's latents."""
    layer_starts: Tensor
    """[L + 1] where each layer's latents begin (latents are sorted by layer)."""
    constant_reads: Tensor
    """[L + 1, T, d] each layer's normalised MLP input, and the final norm's output, with every
    source at zero (what the biases alone give)."""


def prepare(model: LinearReplacement, sources: Sources) -> Prepared:
    """Group the latents by site and run the model once with every source at zero."""
    latents = sources.latents
    n_layers, n_pos, d = sources.errors.shape
    site = latents.layers * n_pos + latents.positions
    counts = torch.bincount(site, minlength=n_layers * n_pos)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(latents.size) - first[site]  # latents are sorted by (layer, position)
    decoders = torch.zeros(n_layers * n_pos, int(counts.max()) if latents.size else 0, d)
    decoders[site, slot] = latents.scaled_decoder()
    per_layer = torch.bincount(latents.layers, minlength=n_layers)
    layer_starts = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(per_layer, 0)])
    with torch.no_grad():
        sites = model.run(torch.zeros(1, n_pos, sources.embeddings.shape[-1]), [])
    assert sites.final is not None
    return Prepared(decoders, site, slot, layer_starts, torch.stack([*sites.mlp_in, sites.final])[:, 0])


def attribution_rows(
    model: LinearReplacement, sources: Sources, targets: Targets, prepared: Prepared
) -> Rows:
    """The incoming edges of `targets` from every source, by the hand-written backward pass of the
    linear replacement model (`LinearReplacement.backward`), each source read at its layer's
    gradient as it comes down: a latent's scaled decoder row, an error vector, an embedding · the
    gradient there (module docstring)."""
    batch = targets.layers.shape[0]
    n_layers, n_pos = sources.errors.shape[:2]
    order = torch.argsort(targets.layers, descending=True, stable=True)
    edges = torch.zeros(batch, sources.columns)
    error_start = sources.latents.size
    embedding_start = error_start + n_layers * n_pos
    for layer, grad in model.backward(
        targets.layers[order], targets.positions[order], targets.vectors[order]
    ):
        if layer < 0:
            edges[:, embedding_start:] = (grad * sources.embeddings[:, None]).sum(-1).T
            continue
        live = grad.shape[1]
        a, b = int(prepared.layer_starts[layer]), int(prepared.layer_starts[layer + 1])
        if b > a:
            per_site = torch.bmm(prepared.decoders[layer * n_pos : (layer + 1) * n_pos], grad.transpose(1, 2))
            edges[:live, a:b] = per_site[prepared.site[a:b] - layer * n_pos, prepared.slot[a:b]].T
        start = error_start + layer * n_pos
        edges[:live, start : start + n_pos] = torch.einsum("tbd,td->bt", grad, sources.errors[layer])
    unsorted = torch.empty_like(edges)
    unsorted[order] = edges
    constants = (prepared.constant_reads[targets.layers, targets.positions] * targets.vectors).sum(-1)
    return Rows(unsorted, constants)


def autograd_rows(model: LinearReplacement, sources: Sources, targets: Targets) -> Rows:
    """`attribution_rows` by autograd: a forward run of the batch through the replacement model and
    torch's backward pass — slower (a forward and a backward per batch), kept as the reference the
    tests check the hand-written backward pass against."""
    batch = targets.layers.shape[0]
    n_layers, n_pos, d = sources.errors.shape
    stop = min(int(targets.layers.max()) + 1, n_layers) if batch else 0
    stop = n_layers if bool((targets.layers == n_layers).any()) else stop
    embed = torch.zeros(batch, n_pos, sources.embeddings.shape[-1], requires_grad=True)
    injected = [torch.zeros(batch, n_pos, d, requires_grad=True) for _ in range(stop)]
    with torch.enable_grad():
        sites = model.run(embed, injected, stop=stop)
        values = _read_targets(sites, targets, n_layers)
        grads = torch.autograd.grad(values.sum(), [embed, *injected], allow_unused=True)
    edges = torch.zeros(batch, sources.columns)
    latents = sources.latents
    scaled = latents.scaled_decoder()
    error_start = latents.size
    for layer in range(stop):
        grad = grads[1 + layer]
        if grad is None:
            continue
        chosen = torch.nonzero(latents.layers == layer).flatten()
        if chosen.numel():
            at = grad[:, latents.positions[chosen]]  # [B, n, d]
            edges[:, chosen] = torch.einsum("bnd,nd->bn", at, scaled[chosen])
        start = error_start + layer * n_pos
        edges[:, start : start + n_pos] = (grad * sources.errors[layer]).sum(-1)
    if grads[0] is not None:
        edges[:, error_start + n_layers * n_pos :] = (grads[0] * sources.embeddings).sum(-1)
    return Rows(edges, values.detach())


class LogitTargets(NamedTuple):
    """The logit nodes of a graph."""

    token_ids: Tensor
    """[n] vocabulary ids (the target first)."""
    probabilities: Tensor
    """[n] their probabilities after the prompt."""
    vectors: Tensor
    """[n, d] their unembedding rows minus the mean row (a logit minus the mean logit)."""


def logit_targets(
    logits: Tensor, unembed: Tensor, target: int | None, max_logits: int, probability: float
) -> LogitTargets:
    """The target token, or the top tokens until `probability` (at most `max_logits`)."""
    probs = torch.softmax(logits.float(), dim=-1)
    if target is not None:
        ids = torch.tensor([target])
    else:
        top_p, top_ids = torch.topk(probs, min(max_logits, probs.shape[0]))
        cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(probability))) + 1
        ids = top_ids[: min(cutoff, top_ids.shape[0])]
    unembed = unembed.float()
    vectors = unembed[ids] - unembed.mean(dim=0, keepdim=True)
    return LogitTargets(ids, probs[ids], vectors)


class Built(NamedTuple):
    """A graph and what ablating each of its nodes writes into the real model."""

    graph: AttributionGraph
    """The graph."""
    edits: NodeEdits
    """Per node (logits excepted): where in the real model it writes, and what."""
    replacement_gap: float
    """Largest relative difference between the replacement model's logits (true values injected)
    and the real model's (NaN when the graph has no replacement model)."""
    replacement: LinearReplacement | None = None
    """The replacement model (transcoder graphs), for splitting edges over heads."""


def _latent_targets(latents: ActiveLatents, index: Tensor) -> Targets:
    return Targets(latents.layers[index], latents.positions[index], latents.encoder[index])


def _rank(rows: Tensor, row_nodes: Tensor, probs: Tensor, n_latents: int, visited: Tensor) -> Tensor:
    seed = torch.zeros(rows.shape[1] + probs.shape[0])
    seed[rows.shape[1] :] = probs
    scores = partial_influence(rows, row_nodes, seed)[:n_latents]
    order = torch.argsort(scores, descending=True)
    return order[~visited[order]]


def compute_rows(
    model: LinearReplacement, sources: Sources, logits: LogitTargets, settings: GraphSettings
) -> tuple[Tensor, Tensor, Tensor]:
    """Rows of the logits, then of the most influential latents (module docstring): the rows
    [R, C], their constants [R], and each row's node (latent index < N; logit j: C + j)."""
    n_layers, n_pos = sources.errors.shape[:2]
    columns, n_latents, n_logits = sources.columns, sources.latents.size, logits.token_ids.shape[0]
    budget = min(settings.max_feature_nodes, n_latents)
    rows = torch.zeros(n_logits + budget, columns)
    constants = torch.zeros(n_logits + budget)
    row_nodes = torch.zeros(n_logits + budget, dtype=torch.long)
    last = torch.full((n_logits,), n_pos - 1)
    prepared = prepare(model, sources)
    for a in range(0, n_logits, settings.batch_size):
        b = min(a + settings.batch_size, n_logits)
        got = attribution_rows(
            model,
            sources,
            Targets(torch.full((b - a,), n_layers), last[a:b], logits.vectors[a:b]),
            prepared,
        )
        rows[a:b], constants[a:b] = got.edges, got.constants
        row_nodes[a:b] = columns + torch.arange(a, b)
    filled, visited = n_logits, torch.zeros(n_latents, dtype=torch.bool)
    while filled < n_logits + budget:
        pending = _rank(rows[:filled], row_nodes[:filled], logits.probabilities, n_latents, visited)
        pending = pending[: min(settings.update_interval * settings.batch_size, n_logits + budget - filled)]
        for a in range(0, pending.shape[0], settings.batch_size):
            chosen = pending[a : a + settings.batch_size]
            got = attribution_rows(model, sources, _latent_targets(sources.latents, chosen), prepared)
            b = filled + chosen.shape[0]
            rows[filled:b] = got.edges
            constants[filled:b] = got.constants + sources.latents.encoder_bias[chosen]
            row_nodes[filled:b] = chosen
            visited[chosen] = True
            filled = b
        log.info("edges of %d of %d latents computed", filled - n_logits, budget)
    return rows, constants, row_nodes


def assemble(
    sources: Sources,
    logits: LogitTargets,
    computed: tuple[Tensor, Tensor, Tensor],
    logit_values: Tensor,
    token_ids: Sequence[int],
) -> tuple[list[Node], Tensor, Tensor, Tensor, Tensor]:
    """The graph's nodes, adjacency, constants and unkept effects from the computed rows, keeping
    the latents whose rows were computed; also the kept latents' indices among all active ones."""
    rows, constants, row_nodes = computed
    latents, errors = sources.latents, sources.errors
    n_layers, n_pos = errors.shape[:2]
    columns = sources.columns
    kept = torch.sort(row_nodes[row_nodes < latents.size]).values
    others = torch.arange(latents.size, columns)
    column_map = torch.cat([kept, others])
    n_kept, n_logits = kept.shape[0], logits.token_ids.shape[0]
    n = n_kept + others.shape[0] + n_logits
    adjacency = torch.zeros(n, n)
    node_constants = torch.full((n,), float("nan"))
    node_of_row = torch.empty_like(row_nodes)
    position_of_kept = {int(v): i for i, v in enumerate(kept.tolist())}
    for r, node in enumerate(row_nodes.tolist()):
        node_of_row[r] = position_of_kept[node] if node < columns else n - n_logits + (node - columns)
    adjacency[node_of_row, : n_kept + others.shape[0]] = rows[:, column_map]
    node_constants[node_of_row] = constants
    left_out = torch.ones(columns, dtype=torch.bool)
    left_out[column_map] = False
    unkept = torch.full((n,), float("nan"))
    unkept[node_of_row] = rows[:, left_out].sum(-1)
    nodes = [
        Node(
            "latent",
            int(latents.layers[i]),
            int(latents.positions[i]),
            int(latents.features[i]),
            float(latents.activations[i]),
        )
        for i in kept.tolist()
    ]
    norms = errors.norm(dim=-1)
    nodes += [
        Node("error", layer, pos, -1, float(norms[layer, pos]))
        for layer in range(n_layers)
        for pos in range(n_pos)
    ]
    nodes += [
        Node("embedding", -1, pos, int(token_ids[pos]), float(sources.embeddings[pos].norm()))
        for pos in range(n_pos)
    ]
    nodes += [
        Node("logit", n_layers, n_pos - 1, int(t), float(v))
        for t, v in zip(logits.token_ids.tolist(), logit_values.tolist())
    ]
    return nodes, adjacency, node_constants, unkept, kept


def transcoder_edits(
    sources: Sources, kept: Tensor, embed_path: str, layers_path: str, token_ids: Sequence[int]
) -> NodeEdits:
    """What ablating each non-logit node writes into the real model: a latent subtracts its
    activation × decoder row from its layer's MLP output, an error node its error vector there, an
    embedding its own vector from the embedding output."""
    latents, errors = sources.latents.select(kept), sources.errors
    n_layers, n_pos = errors.shape[:2]
    sites = [f"{layers_path}.{int(layer)}.mlp" for layer in latents.layers.tolist()]
    sites += [f"{layers_path}.{layer}.mlp" for layer in range(n_layers) for _ in range(n_pos)]
    sites += [embed_path] * n_pos
    positions = (
        latents.positions.tolist() + [p for _ in range(n_layers) for p in range(n_pos)] + list(range(n_pos))
    )
    vectors = torch.cat([latents.scaled_decoder(), errors.reshape(-1, errors.shape[-1]), sources.embeddings])
    return NodeEdits(tuple(sites), tuple(positions), vectors)


def transcoder_graph(
    loaded_model: Any,
    transcoders: Mapping[int, Any],
    token_ids: Sequence[int],
    prompt: str,
    tokens: Sequence[str],
    target: int | None,
    settings: GraphSettings,
    dictionaries: Sequence[str] = (),
) -> Built:
    """The attribution graph of `token_ids` through `transcoders` (layer → transcoder)."""
    model = loaded_model.model
    parts = llama_layers(model)
    frozen: FrozenPrompt = freeze_prompt(model, token_ids)
    latents, errors = active_transcoder_latents(frozen, transcoders)
    mlp_linear = [
        (transcoders[layer].b_dec, transcoders[layer].W_skip) if layer in transcoders else (None, None)
        for layer in range(frozen.mlp_outputs.shape[0])
    ]
    replacement = LinearReplacement(frozen, model, mlp_linear)
    gap = replacement.check_reproduces(mlp_injections(latents, errors))
    sources = Sources(latents, errors, frozen.embeddings)
    logits = logit_targets(
        frozen.logits, replacement.unembed, target, settings.max_logits, settings.logit_probability
    )
    computed = compute_rows(replacement, sources, logits, settings)
    rows, constants, _ = computed
    logit_values = rows[: logits.token_ids.shape[0]].sum(-1) + constants[: logits.token_ids.shape[0]]
    nodes, adjacency, node_constants, unkept, kept = assemble(
        sources, logits, computed, logit_values, token_ids
    )
    graph = AttributionGraph(
        method="transcoders",
        model=str(getattr(loaded_model, "name", "")),
        prompt=prompt,
        tokens=tuple(tokens),
        token_ids=tuple(int(t) for t in token_ids),
        nodes=tuple(nodes),
        adjacency=adjacency,
        constants=node_constants,
        unkept=unkept,
        logit_probabilities=logits.probabilities,
        n_layers=frozen.mlp_outputs.shape[0],
        dictionaries=tuple(dictionaries),
        active_latents=latents.size,
    )
    edits = transcoder_edits(sources, kept, parts.embed_path, parts.layers_path, token_ids)
    return Built(graph, edits, gap, replacement)


__all__ = [
    "Built",
    "GraphSettings",
    "LogitTargets",
    "Prepared",
    "Rows",
    "Sources",
    "Targets",
    "assemble",
    "attribution_rows",
    "autograd_rows",
    "compute_rows",
    "logit_targets",
    "prepare",
    "transcoder_edits",
    "transcoder_graph",
]
