"""The attention heads an edge between two positions flows through (per-head OV contributions).

In the replacement model an edge from a source at position p_s to a target at position p_t ≠ p_s
is a sum over linear paths, and every such path changes position for the last time in exactly one
attention head h of one layer L, moving from some key position k ≠ p_t into p_t through h's
value/output (OV) path at h's frozen pattern A_h[p_t, k]. Grouping the paths by that (L, h):

    edge = Σ_{L,h} Σ_{k ≠ p_t} A_h[p_t, k] · γ_L · O_h V_h (m_L[k] ⊙ F_L[k])

where F_L is the source's vector carried (along every path) into the residual stream entering
layer L, m_L the frozen input-norm multiplier, and γ_L the gradient of the target with respect to
layer L's attention output at p_t along the paths that stay at p_t afterwards (the residual
stream, the heads' self-attention A_h[p_t, p_t], the transcoders' skip path). The contributions
of all (layer, head) pairs sum to the edge exactly — what circuit-tracer's users asked for (its
issue #53) and its pull request #114 splits per layer instead.

This module knows nothing about how sources and targets are chosen, or files.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .frozen import LinearReplacement


class HeadSplit(NamedTuple):
    """An edge split over the heads that carry it to its target's position."""

    contributions: Tensor
    """[L, H] the part of the edge whose last position change is in head h of layer L (zero at
    layers the edge does not cross)."""
    edge: float
    """The edge weight (their sum)."""


def carried(model: LinearReplacement, layer: int, position: int, vector: Tensor, n_pos: int) -> list[Tensor]:
    """[T, d] per layer L: the source's vector (written after layer `layer`'s MLP at `position`;
    `layer` −1: an embedding) carried into the residual stream entering layer L (None-free list
    of length n_layers + 1; zeros before the source)."""
    d = vector.shape[-1]
    injections: list[Tensor | None] = [None] * model.n_layers
    embed = torch.zeros(1, n_pos, d)
    if layer < 0:
        embed[0, position] = vector
    else:
        inject = torch.zeros(1, n_pos, d)
        inject[0, position] = vector
        injections[layer] = inject
    with torch.no_grad():
        sites = model.run(embed, injections, constants=False)
    return [r[0] for r in sites.resid]


def stay_gradients(
    model: LinearReplacement, layer: int, position: int, vector: Tensor
) -> list[Tensor | None]:
    """Per layer L: γ_L [d], the gradient of the target (`vector` read at layer `layer`'s normalised
    MLP input, or at the final norm's output when `layer` is the number of layers) with respect to
    layer L's attention output at `position`, along paths that stay at `position` (None for layers
    after the target)."""
    frozen = model.frozen
    gammas: list[Tensor | None] = [None] * model.n_layers
    if layer == model.n_layers:
        grad_x = (
            frozen.final_multiplier[position] * vector
        )  # gradient w.r.t. the residual after the last layer
        top = model.n_layers - 1
        grad_h = None
    else:
        grad_h = frozen.mlp_multiplier[layer, position] * vector
        top = layer
        grad_x = None
    for current in range(top, -1, -1):
        if grad_h is None:
            assert grad_x is not None
            grad_h = grad_x
            skip = model.mlp_skip[current]
            if skip is not None:
                grad_h = grad_h + frozen.mlp_multiplier[current, position] * (skip.T @ grad_x)
        gammas[current] = grad_h
        w = model.attention[current]
        per_head = (w.o_weight.T @ grad_h).view(w.heads, w.head_dim)
        diagonal = frozen.patterns[current, :, position, position]
        weighted = (per_head * diagonal[:, None]).view(w.kv_heads, -1, w.head_dim).sum(1).reshape(-1)
        grad_x = grad_h + frozen.attn_multiplier[current, position] * (w.v_weight.T @ weighted)
        grad_h = None
    return gammas


def split_edge(
    model: LinearReplacement,
    source: tuple[int, int, Tensor],
    target: tuple[int, int, Tensor],
    n_pos: int,
) -> HeadSplit:
    """Split the edge from `source` (layer, position, vector written) to `target` (layer, position,
    vector read) over heads (module docstring); the positions must differ."""
    s_layer, s_pos, s_vec = source
    t_layer, t_pos, t_vec = target
    if s_pos == t_pos:
        raise ValueError("an edge within one position crosses no head")
    forward = carried(model, s_layer, s_pos, s_vec.float(), n_pos)
    gammas = stay_gradients(model, t_layer, t_pos, t_vec.float())
    heads = model.attention[0].heads
    out = torch.zeros(model.n_layers, heads)
    keys = torch.ones(n_pos, dtype=torch.bool)
    keys[t_pos] = False
    for layer in range(max(s_layer + 1, 0), model.n_layers):
        gamma = gammas[layer]
        if gamma is None:
            break
        w = model.attention[layer]
        values = (forward[layer] * model.frozen.attn_multiplier[layer]) @ w.v_weight.T  # [T, kv·dh]
        values = values.view(n_pos, w.kv_heads, w.head_dim).repeat_interleave(w.heads // w.kv_heads, dim=1)
        reads = (w.o_weight.T @ gamma).view(w.heads, w.head_dim)  # [H, dh]
        per_key = torch.einsum("khd,hd->hk", values, reads)  # [H, T]
        pattern = model.frozen.patterns[layer, :, t_pos, :]  # [H, T]
        out[layer] = (pattern[:, keys] * per_key[:, keys]).sum(-1)
    return HeadSplit(out, float(out.sum()))


__all__ = ["HeadSplit", "carried", "split_edge", "stay_gradients"]
