"""Sparse Feature Circuits (Marks et al. 2024): an attribution graph from residual-stream SAEs at a
few layers, without transcoders.

The residual stream at each chosen SAE's site is its reconstruction plus its error, so every path
from the tokens to the logits crosses each SAE's latents or its error node at every position: the
graph's edges join consecutive stages only — the token embeddings to the first SAE's latents, each
SAE's latents and error nodes to the next SAE's latents, the last SAE's to the logits (a logit
minus the mean logit, at the last position). The real model runs in between, nothing frozen.

An edge u → t is attribution patching's estimate of what removing u does to t (zero ablation):
value_u × ∂t/∂u — a latent's activation times the gradient of t with respect to it; an error
node's or an embedding's vector · the gradient with respect to it. t is a latent's pre-activation
or the logit. With `method="integrated-gradients"` the gradient is the mean over `steps` points
(midpoints) on the straight line from every upstream node at zero to every upstream node at its
value (Marks et al.'s integrated gradients, 10 steps by default). Error nodes and embeddings have
no incoming edges (the downstream errors are held, as the transcoder graph holds them). A
target's `constants` entry is its value minus its edges: what the first-order (or integrated)
estimate leaves out, plus the SAE's biases.

Supported sites: `resid_pre:L` and `resid_post:L` (the residual stream); others are refused.

This module knows nothing about files or the command line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import SaescopeError
from ..hookpoints import Hookpoint, module_at
from ..hooks import collect_activations, patch_activations
from .attribution import Built, logit_targets
from .frozen import llama_layers
from .graph import AttributionGraph, Node
from .validation import NodeEdits

Method = Literal["attribution-patching", "integrated-gradients"]


class Stage(NamedTuple):
    """One SAE at one site, and its codes on the prompt."""

    sae: Any
    """The SAE."""
    hookpoint: Hookpoint
    """Where it reads the residual stream."""
    acts: Tensor
    """[T, K] its active latents' activations (0 in padding slots)."""
    indices: Tensor
    """[T, K] their ids."""
    errors: Tensor
    """[T, d] the residual stream minus its reconstruction."""


def residual_index(hookpoint: Hookpoint) -> int:
    """How many layers the residual stream at `hookpoint` has passed (resid_pre:L → L, resid_post:L → L+1)."""
    form, _, layer = hookpoint.alias.partition(":")
    if form not in ("resid_pre", "resid_post") or not layer.isdigit():
        raise SaescopeError(
            f"a Sparse Feature Circuits graph reads residual-stream SAEs (resid_pre:L, resid_post:L); "
            f"one reads {hookpoint.alias}"
        )
    return int(layer) + (form == "resid_post")


@contextlib.contextmanager
def _keep_output(model: nn.Module, hookpoint: Hookpoint) -> Iterator[list[Tensor]]:
    """The activation at `hookpoint` of each forward pass in the block, with its autograd graph."""
    kept: list[Tensor] = []
    module = module_at(model, hookpoint.module_path)
    if hookpoint.kind == "output":

        def hook(_m: nn.Module, _a: Any, out: Any) -> None:
            kept.append(out[0] if isinstance(out, tuple) else out)

        handle = module.register_forward_hook(hook)
    else:

        def pre(_m: nn.Module, args: Any, kwargs: Any) -> None:
            kept.append(args[0] if args else kwargs["hidden_states"])

        handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield kept
    finally:
        handle.remove()


def stages_of(model: Any, saes: Sequence[tuple[Any, Hookpoint]], token_ids: Sequence[int]) -> list[Stage]:
    """The SAEs' codes and errors on the prompt, ordered along the residual stream."""
    order = sorted(saes, key=lambda pair: residual_index(pair[1]))
    indexes = [residual_index(h) for _, h in order]
    if len(set(indexes)) != len(indexes):
        raise SaescopeError("two SAEs read the same residual-stream site; give one per site")
    layers = [h.layer for _, h in order]
    if len(set(layers)) != len(layers):  # the graph's nodes name a dictionary by its layer
        raise SaescopeError(
            f"two SAEs read layer {next(x for x in layers if layers.count(x) > 1)} "
            f"({', '.join(h.alias for _, h in order)}): a graph names its dictionaries by layer, "
            "give one per layer"
        )
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    with torch.no_grad(), collect_activations(model, [h for _, h in order], stop_early=True) as collector:
        acts = collector.run(input_ids=ids, attention_mask=torch.ones_like(ids))
    stages = []
    with torch.no_grad():
        for sae, hookpoint in order:
            x = acts[hookpoint.name][0].float()
            out = sae(x.to(sae.W_dec.dtype))
            stages.append(
                Stage(sae, hookpoint, out.latent_acts.float(), out.latent_indices, x - out.recon.float())
            )
    return stages


class StageNodes(NamedTuple):
    """The latent nodes of one stage: positions, slots in its [T, K] codes, latent ids."""

    positions: Tensor
    slots: Tensor
    features: Tensor


def stage_nodes(stage: Stage) -> StageNodes:
    """Active latents (activation > 0), by position then latent id."""
    pos, slot = torch.nonzero(stage.acts > 0, as_tuple=True)
    feats = stage.indices[pos, slot]
    order = torch.argsort(pos * (int(stage.indices.max()) + 2 if stage.indices.numel() else 1) + feats)
    return StageNodes(pos[order], slot[order], feats[order])


class Upstream(NamedTuple):
    """Leaves of one backward pass: the upstream stage's latents and errors, or the embeddings."""

    acts: Tensor | None
    errors: Tensor


def _gradients(
    model: Any,
    token_ids: Sequence[int],
    upstream: Stage | None,
    downstream: Stage | None,
    targets: tuple[Tensor, Tensor],
    alpha: float,
    embed_path: str,
) -> tuple[Upstream, Tensor]:
    """Gradients of a batch of targets (positions; latent ids, or token ids when `downstream` is
    None: the logits) with the upstream nodes scaled by `alpha`; also the targets' values."""
    positions, features = targets
    batch = positions.shape[0]
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device).expand(batch, -1)
    with torch.enable_grad(), contextlib.ExitStack() as stack:
        if upstream is None:
            embeds = model.get_input_embeddings()(ids[:1])[0].detach().float()
            errors = embeds.expand(batch, -1, -1).clone().requires_grad_(True)
            acts = None
            site: str = embed_path

            def replace(a: Tensor) -> Tensor:
                return (alpha * errors).to(a.dtype)
        else:
            acts = upstream.acts.expand(batch, -1, -1).clone().requires_grad_(True)
            errors = upstream.errors.expand(batch, -1, -1).clone().requires_grad_(True)
            site = upstream.hookpoint.name
            sae = upstream.sae
            idx = upstream.indices.expand(batch, -1, -1)

            def replace(a: Tensor) -> Tensor:
                flat = sae.decode((alpha * acts).reshape(-1, acts.shape[-1]), idx.reshape(-1, idx.shape[-1]))
                return (flat.view(batch, -1, flat.shape[-1]) + alpha * errors).to(a.dtype)

        stack.enter_context(patch_activations(model, site, replace))
        if downstream is not None:
            kept = stack.enter_context(_keep_output(model, downstream.hookpoint))
            model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
            x = kept[0][torch.arange(batch), positions.to(device)].float()
            pre = downstream.sae.encode(x.to(downstream.sae.W_dec.dtype)).pre_acts.float()
            values = pre[torch.arange(batch), features]
        else:
            logits = (
                model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
                .logits[:, -1]
                .float()
            )
            values = logits[torch.arange(batch), features.to(device)] - logits.mean(-1)
        leaves = [errors] if acts is None else [acts, errors]
        grads = torch.autograd.grad(values.sum(), leaves)
    if acts is None:
        return Upstream(None, grads[0].cpu()), values.detach().cpu()
    return Upstream(grads[0].cpu(), grads[1].cpu()), values.detach().cpu()


def _stage_rows(
    model: Any,
    token_ids: Sequence[int],
    upstream: Stage | None,
    downstream: Stage | None,
    targets: tuple[Tensor, Tensor],
    method: Method,
    steps: int,
    embed_path: str,
) -> Tensor:
    """Edges [B, upstream nodes] into a batch of targets (upstream latents then its errors, or the
    embeddings)."""
    alphas = [1.0] if method == "attribution-patching" else [(k + 0.5) / steps for k in range(steps)]
    total: Upstream | None = None
    for alpha in alphas:
        grads, _ = _gradients(model, token_ids, upstream, downstream, targets, alpha, embed_path)
        total = (
            grads
            if total is None
            else Upstream(
                None if grads.acts is None or total.acts is None else total.acts + grads.acts,
                total.errors + grads.errors,
            )
        )
    assert total is not None
    mean_errors = total.errors / len(alphas)
    if upstream is None:
        embeds = model.get_input_embeddings().weight.detach().float().cpu()[torch.tensor(list(token_ids))]
        return (mean_errors * embeds).sum(-1)
    assert total.acts is not None
    nodes = stage_nodes(upstream)
    mean_acts = total.acts / len(alphas)
    latent_edges = (
        mean_acts[:, nodes.positions, nodes.slots] * upstream.acts[nodes.positions, nodes.slots].cpu()
    )
    error_edges = (mean_errors * upstream.errors.cpu()).sum(-1)
    return torch.cat([latent_edges, error_edges], dim=1)


def _true_values(
    model: Any, token_ids: Sequence[int], downstream: Stage | None, targets: tuple[Tensor, Tensor]
) -> Tensor:
    """The targets' values on the clean prompt (what integrated gradients' values at alpha < 1 are not)."""
    positions, features = targets
    if downstream is not None:
        x = downstream.errors.new_zeros(0)
        with torch.no_grad():
            recon = downstream.sae.decode(downstream.acts, downstream.indices).float() + downstream.errors
            x = recon[positions]
            return (
                downstream.sae.encode(x.to(downstream.sae.W_dec.dtype))
                .pre_acts.float()[torch.arange(positions.shape[0]), features]
                .cpu()
            )
    device = next(model.parameters()).device
    with torch.no_grad():
        ids = torch.tensor([list(token_ids)], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0, -1].float().cpu()
    return logits[features] - logits.mean()


def sfc_graph(
    loaded_model: Any,
    saes: Sequence[tuple[Any, Hookpoint]],
    token_ids: Sequence[int],
    prompt: str,
    tokens: Sequence[str],
    target: int | None,
    max_logits: int = 10,
    logit_probability: float = 0.95,
    method: Method = "attribution-patching",
    steps: int = 10,
    batch_size: int = 64,
    dictionaries: Sequence[str] = (),
) -> Built:
    """The Sparse Feature Circuits graph of `token_ids` through `saes` ((SAE, hookpoint) pairs)."""
    model = loaded_model.model
    parts = llama_layers(model)
    stages = stages_of(model, saes, token_ids)
    n_pos, n_layers = len(token_ids), len(parts.layers)
    with torch.no_grad():
        device = next(model.parameters()).device
        ids = torch.tensor([list(token_ids)], device=device)
        last = model(input_ids=ids, use_cache=False).logits[0, -1].float().cpu()
    logits = logit_targets(last, parts.unembed.detach().cpu(), target, max_logits, logit_probability)
    per_stage = [stage_nodes(s) for s in stages]
    n_latents = sum(int(p.positions.shape[0]) for p in per_stage)
    latent_start = [sum(int(p.positions.shape[0]) for p in per_stage[:i]) for i in range(len(stages))]
    error_start = n_latents
    embed_start = n_latents + len(stages) * n_pos
    logit_start = embed_start + n_pos
    n = logit_start + logits.token_ids.shape[0]
    adjacency, constants = torch.zeros(n, n), torch.full((n,), float("nan"))

    def upstream_columns(i: int) -> Tensor:
        if i == 0:
            return torch.arange(embed_start, embed_start + n_pos)
        latents = torch.arange(latent_start[i - 1], latent_start[i - 1] + per_stage[i - 1].positions.shape[0])
        return torch.cat([latents, torch.arange(error_start + (i - 1) * n_pos, error_start + i * n_pos)])

    for i in range(len(stages) + 1):
        downstream = stages[i] if i < len(stages) else None
        if downstream is not None:
            rows_at = torch.arange(latent_start[i], latent_start[i] + per_stage[i].positions.shape[0])
            all_targets = (per_stage[i].positions, per_stage[i].features)
        else:
            rows_at = torch.arange(logit_start, n)
            all_targets = (torch.full((rows_at.shape[0],), n_pos - 1), logits.token_ids)
        columns = upstream_columns(i)
        upstream = stages[i - 1] if i > 0 else None
        for a in range(0, rows_at.shape[0], batch_size):
            chunk = (all_targets[0][a : a + batch_size], all_targets[1][a : a + batch_size])
            edges = _stage_rows(
                model, token_ids, upstream, downstream, chunk, method, steps, parts.embed_path
            )
            values = _true_values(model, token_ids, downstream, chunk)
            rows = rows_at[a : a + batch_size]
            adjacency[rows[:, None], columns[None, :]] = edges
            constants[rows] = values - edges.sum(-1)
    nodes: list[Node] = []
    for stage, found in zip(stages, per_stage):
        layer = int(stage.hookpoint.layer if stage.hookpoint.layer is not None else -1)
        nodes += [
            Node("latent", layer, int(p), int(f), float(stage.acts[p, s]))
            for p, s, f in zip(found.positions.tolist(), found.slots.tolist(), found.features.tolist())
        ]
    for stage in stages:
        layer = int(stage.hookpoint.layer if stage.hookpoint.layer is not None else -1)
        nodes += [Node("error", layer, p, -1, float(stage.errors[p].norm())) for p in range(n_pos)]
    embeds = model.get_input_embeddings().weight.detach().float().cpu()[torch.tensor(list(token_ids))]
    nodes += [Node("embedding", -1, p, int(token_ids[p]), float(embeds[p].norm())) for p in range(n_pos)]
    logit_values = adjacency[logit_start:].sum(-1) + constants[logit_start:]
    nodes += [
        Node("logit", n_layers, n_pos - 1, int(t), float(v))
        for t, v in zip(logits.token_ids.tolist(), logit_values.tolist())
    ]
    graph = AttributionGraph(
        method="sparse-feature-circuits",
        model=str(getattr(loaded_model, "name", "")),
        prompt=prompt,
        tokens=tuple(tokens),
        token_ids=tuple(int(t) for t in token_ids),
        nodes=tuple(nodes),
        adjacency=adjacency,
        constants=constants,
        unkept=torch.where(constants.isnan(), constants, torch.zeros(n)),
        logit_probabilities=logits.probabilities,
        n_layers=n_layers,
        dictionaries=tuple(dictionaries),
        active_latents=n_latents,
    )
    return Built(graph, _sfc_edits(stages, per_stage, embeds, parts.embed_path), float("nan"))


def _sfc_edits(
    stages: Sequence[Stage], per_stage: Sequence[StageNodes], embeds: Tensor, embed_path: str
) -> NodeEdits:
    sites: list[str] = []
    positions: list[int] = []
    vectors: list[Tensor] = []
    for stage, found in zip(stages, per_stage):
        decoder = stage.sae.W_dec.detach().float().cpu()
        acts = stage.acts.cpu()
        sites += [stage.hookpoint.name] * found.positions.shape[0]
        positions += found.positions.tolist()
        vectors.append(acts[found.positions, found.slots][:, None] * decoder[found.features])
    for stage in stages:
        sites += [stage.hookpoint.name] * stage.errors.shape[0]
        positions += list(range(stage.errors.shape[0]))
        vectors.append(stage.errors.cpu())
    sites += [embed_path] * embeds.shape[0]
    positions += list(range(embeds.shape[0]))
    vectors.append(embeds)
    return NodeEdits(tuple(sites), tuple(positions), torch.cat(vectors))


__all__ = ["Method", "Stage", "residual_index", "sfc_graph", "stage_nodes", "stages_of"]
