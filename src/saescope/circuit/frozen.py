"""The local replacement model of one prompt (Ameisen et al. 2025, "Circuit Tracing"): the real
model's nonlinear parts frozen at their values on this prompt, so that what is left is linear in
the residual stream.

`freeze_prompt` runs the model once on the prompt (eager attention, to read its patterns) and keeps,
per decoder layer, what makes the layer nonlinear: the attention patterns and the scales of both
RMS norms (each norm becomes an elementwise multiplier per position, its gain over the RMS it
divided by), the final norm's multiplier, the token embeddings, the MLP's input (after its norm:
what a transcoder reads) and its output. `LinearReplacement` then runs the layers with those frozen
— attention as its value/output path mixed by the frozen pattern, each norm as its multiplier, and
each MLP replaced by what the caller injects there plus a transcoder's linear part (its `b_dec`
and skip path `W_skip`) — on a batch of injections; with the true latents' decoder outputs and
error vectors injected it reproduces the real model's logits (checked when it is built). Its
`backward` is the same linear map transposed, written by hand: a batch of read vectors carried
down layer by layer (the residual stream, the skip path through the frozen MLP norm, each head's
value/output path through its frozen pattern transposed and the frozen input norm, key/value
groups summed), yielding the gradient at every layer's MLP output — no forward pass, no autograd.

Supported: Llama-style decoders (`model.layers[i]` with `input_layernorm`, `self_attn.v_proj/
o_proj`, `post_attention_layernorm`, `mlp`; a final `norm`) with RMS norms whose gain is `weight`
or `1 + weight`; anything else is refused in one line.

This module knows nothing about which latents are active, graphs, or files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import SaescopeError

REPRODUCE_TOLERANCE = 1e-3
"""Largest |logit| difference (relative to the logits' scale) between the real model and the
replacement model with every injection at its true value before the replacement is refused."""


class FrozenPrompt(NamedTuple):
    """What the real model computed on one prompt, as the replacement model freezes it."""

    token_ids: list[int]
    """The prompt's token ids (BOS included when it has one)."""
    embeddings: Tensor
    """[T, d] token embeddings (the residual stream entering layer 0)."""
    attn_multiplier: Tensor
    """[L, T, d] each layer's input norm as a multiplier: gain / RMS of the residual at each position."""
    patterns: Tensor
    """[L, H, T, T] attention patterns (query, key)."""
    mlp_multiplier: Tensor
    """[L, T, d] each layer's post-attention norm as a multiplier."""
    final_multiplier: Tensor
    """[T, d] the final norm as a multiplier."""
    mlp_inputs: Tensor
    """[L, T, d] the MLP's input after its norm (what a transcoder reads)."""
    mlp_outputs: Tensor
    """[L, T, d_out] the MLP's output (what a transcoder reconstructs)."""
    logits: Tensor
    """[V] the real model's logits at the last position."""


class Layers(NamedTuple):
    """The modules of a Llama-style decoder that the replacement model reads."""

    embed: Any
    layers: Sequence[Any]
    final_norm: Any
    unembed: Tensor
    """[V, d] the unembedding."""
    embed_path: str
    """Module path of the token embedding (to ablate an embedding in the real model)."""
    layers_path: str
    """Module path of the layer list (`model.layers`)."""


def llama_layers(model: Any) -> Layers:
    """The modules `freeze_prompt` needs; SaescopeError when the model is not Llama-style."""
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    wanted = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
    if (
        base is None
        or not isinstance(layers, nn.ModuleList)
        or not all(hasattr(layer, w) for layer in layers for w in wanted)
        or not all(hasattr(layer.self_attn, p) for layer in layers for p in ("v_proj", "o_proj"))
        or not isinstance(getattr(base, "norm", None), nn.Module)
        or any(hasattr(layer, "pre_feedforward_layernorm") for layer in layers)
    ):
        raise SaescopeError(
            f"attribution graphs need a Llama-style decoder (Llama, Mistral, Qwen, SmolLM); "
            f"{type(model).__name__} is not one"
        )
    return Layers(
        base.embed_tokens,
        list(layers),
        base.norm,
        model.get_output_embeddings().weight,
        "model.embed_tokens",
        "model.layers",
    )


def _norm_multiplier(norm: nn.Module, x: Tensor, y: Tensor, label: str) -> Tensor:
    """The elementwise multiplier m with y = m ⊙ x for an RMS norm on this input (gain `weight` or
    `1 + weight`), checked against the norm's own output."""
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, Tensor):
        raise SaescopeError(f"{label} ({type(norm).__name__}) has no weight: not an RMS norm it can freeze")
    x32, y32 = x.float(), y.float()
    inverse_rms = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    scale = y32.abs().max().clamp_min(1e-12)
    for gain in (weight.float(), 1.0 + weight.float()):
        multiplier = gain * inverse_rms
        if ((multiplier * x32 - y32).abs().max() / scale).item() < 1e-3:
            return multiplier
    raise SaescopeError(
        f"{label} ({type(norm).__name__}) is not an RMS norm this replacement model can freeze"
    )


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Eager attention inside the block (the only implementation that returns its patterns)."""
    before = getattr(model.config, "_attn_implementation", None)
    if before in (None, "eager"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@torch.no_grad()
def freeze_prompt(model: Any, token_ids: Sequence[int]) -> FrozenPrompt:
    """Run `model` once on `token_ids` and keep what the replacement model freezes (module docstring)."""
    parts = llama_layers(model)
    seen: dict[str, Tensor] = {}

    def keep(name: str, with_input: bool) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            x = args[0] if args else kwargs.get("hidden_states")
            if with_input and isinstance(x, Tensor):
                seen[name + ":in"] = x[0].detach()
            seen[name] = (out[0] if isinstance(out, tuple) else out)[0].detach()
            if isinstance(out, tuple) and len(out) > 1 and isinstance(out[1], Tensor):
                seen[name + ":pattern"] = out[1][0].detach()

        return hook

    handles = [parts.embed.register_forward_hook(keep("embed", False), with_kwargs=True)]
    handles.append(parts.final_norm.register_forward_hook(keep("final", True), with_kwargs=True))
    for i, layer in enumerate(parts.layers):
        for name, module in (("ln1", layer.input_layernorm), ("ln2", layer.post_attention_layernorm)):
            handles.append(module.register_forward_hook(keep(f"{name}.{i}", True), with_kwargs=True))
        handles.append(layer.self_attn.register_forward_hook(keep(f"attn.{i}", False), with_kwargs=True))
        handles.append(layer.mlp.register_forward_hook(keep(f"mlp.{i}", False), with_kwargs=True))
    device = parts.unembed.device
    try:
        with eager_attention(model):
            ids = torch.tensor([list(token_ids)], device=device)
            out = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, use_cache=False
            )
    finally:
        for handle in handles:
            handle.remove()
    n = len(parts.layers)
    if any(f"attn.{i}:pattern" not in seen for i in range(n)):
        raise SaescopeError(f"{type(model).__name__} did not return its attention patterns")
    attn_mult = [
        _norm_multiplier(
            layer.input_layernorm, seen[f"ln1.{i}:in"], seen[f"ln1.{i}"], f"layer {i}'s input norm"
        )
        for i, layer in enumerate(parts.layers)
    ]
    mlp_mult = [
        _norm_multiplier(
            layer.post_attention_layernorm, seen[f"ln2.{i}:in"], seen[f"ln2.{i}"], f"layer {i}'s MLP norm"
        )
        for i, layer in enumerate(parts.layers)
    ]
    return FrozenPrompt(
        token_ids=[int(t) for t in token_ids],
        embeddings=seen["embed"].float(),
        attn_multiplier=torch.stack(attn_mult),
        patterns=torch.stack([seen[f"attn.{i}:pattern"].float() for i in range(n)]),
        mlp_multiplier=torch.stack(mlp_mult),
        final_multiplier=_norm_multiplier(
            parts.final_norm, seen["final:in"], seen["final"], "the final norm"
        ),
        mlp_inputs=torch.stack([seen[f"ln2.{i}"].float() for i in range(n)]),
        mlp_outputs=torch.stack([seen[f"mlp.{i}"].float() for i in range(n)]),
        logits=out.logits[0, -1].float(),
    )


class Sites(NamedTuple):
    """What the replacement model computed, per batch row."""

    resid: list[Tensor]
    """[B, T, d] the residual stream entering each layer run (index 0: the embeddings)."""
    mlp_in: list[Tensor]
    """[B, T, d] each layer's normalised MLP input (what a transcoder reads)."""
    final: Tensor | None
    """[B, T, d] the final norm's output (None when the run stopped before the last layer)."""


class AttentionWeights(NamedTuple):
    """One layer's attention value/output path."""

    v_weight: Tensor
    """[H_kv · d_head, d]."""
    v_bias: Tensor | None
    o_weight: Tensor
    """[d, H · d_head]."""
    o_bias: Tensor | None
    heads: int
    kv_heads: int
    head_dim: int


def attention_weights(layer: Any) -> AttentionWeights:
    """The value/output path of a Llama-style layer's attention, in float32."""
    attn = layer.self_attn
    v, o = attn.v_proj, attn.o_proj
    head_dim = int(getattr(attn, "head_dim", 0))
    heads = o.weight.shape[1] // head_dim
    kv_heads = v.weight.shape[0] // head_dim

    def f32(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.detach().float()

    return AttentionWeights(
        v.weight.detach().float(),
        f32(v.bias),
        o.weight.detach().float(),
        f32(o.bias),
        heads,
        kv_heads,
        head_dim,
    )


class LinearReplacement:
    """The prompt's replacement model with everything nonlinear frozen (see the module docstring).

    `mlp_linear[l]` is what layer l's MLP keeps besides the injections: a transcoder's `(b_dec,
    W_skip)` (either may be None: a layer without a transcoder has its whole MLP output injected as
    its error).
    """

    def __init__(
        self,
        frozen: FrozenPrompt,
        model: Any,
        mlp_linear: Sequence[tuple[Tensor | None, Tensor | None]],
    ) -> None:
        parts = llama_layers(model)
        self.frozen = frozen
        self.attention = [attention_weights(layer) for layer in parts.layers]
        self.mlp_bias = [None if b is None else b.detach().float() for b, _ in mlp_linear]
        self.mlp_skip = [None if w is None else w.detach().float() for _, w in mlp_linear]
        self.unembed = parts.unembed.detach().float()
        self.n_layers = len(parts.layers)
        self._o_heads = [  # [H, d, dh]: each head's part of the output projection
            w.o_weight.view(-1, w.heads, w.head_dim).transpose(0, 1).contiguous() for w in self.attention
        ]
        self._grouped_patterns = [  # [kv, key, (head in group, query)]: a group's heads read its values
            self._group(w, pattern) for w, pattern in zip(self.attention, frozen.patterns)
        ]

    @staticmethod
    def _group(w: AttentionWeights, pattern: Tensor) -> Tensor:
        t = pattern.shape[-1]
        group = w.heads // w.kv_heads
        return pattern.view(w.kv_heads, group, t, t).permute(0, 3, 1, 2).reshape(w.kv_heads, t, group * t)

    def attend(self, layer: int, x: Tensor, constants: bool = True) -> Tensor:
        """Layer `layer`'s attention output [B, T, d] for the residual `x` [B, T, d], patterns frozen."""
        w = self.attention[layer]
        xn = x * self.frozen.attn_multiplier[layer]
        v = xn @ w.v_weight.T
        if constants and w.v_bias is not None:
            v = v + w.v_bias
        b, t = v.shape[:2]
        v = v.view(b, t, w.kv_heads, w.head_dim).repeat_interleave(w.heads // w.kv_heads, dim=2)
        z = torch.einsum("hqk,bkhd->bqhd", self.frozen.patterns[layer], v).reshape(b, t, w.heads * w.head_dim)
        out = z @ w.o_weight.T
        if constants and w.o_bias is not None:
            out = out + w.o_bias
        return out

    def run(
        self,
        embeddings: Tensor,
        injections: Sequence[Tensor | None],
        stop: int | None = None,
        constants: bool = True,
    ) -> Sites:
        """The replacement model on a batch: `embeddings` [B, T, d] enter layer 0, `injections[l]`
        [B, T, d] (or None: nothing) is added to layer l's MLP output. Runs layers `0 … stop − 1`
        (all by default); `constants=False` leaves out every constant term (biases, `b_dec`), so
        the run is the linear map alone (the effect of a perturbation)."""
        stop = self.n_layers if stop is None else stop
        x = embeddings
        resid: list[Tensor] = []
        mlp_in: list[Tensor] = []
        for layer in range(stop):
            resid.append(x)
            h = x + self.attend(layer, x, constants)
            mn = h * self.frozen.mlp_multiplier[layer]
            mlp_in.append(mn)
            out = h
            injected = injections[layer] if layer < len(injections) else None
            if injected is not None:
                out = out + injected
            bias, skip = self.mlp_bias[layer], self.mlp_skip[layer]
            if constants and bias is not None:
                out = out + bias
            if skip is not None:
                out = out + mn @ skip.T
            x = out
        final = x * self.frozen.final_multiplier if stop == self.n_layers else None
        if final is not None:
            resid.append(x)
        return Sites(resid, mlp_in, final)

    def attend_transposed(self, layer: int, grad: Tensor) -> Tensor:
        """The transpose of `attend(layer, ·, constants=False)`: the gradient [T, B, d] (positions
        first) at the residual entering layer `layer` from the gradient `grad` [T, B, d] at its
        attention output — the output projection per head, each head's frozen pattern transposed
        (keys ← queries) with the heads of a key/value group summed (GQA) in one product per group,
        the value projection, and the input norm's multiplier."""
        w = self.attention[layer]
        t, b, d = grad.shape
        per_head = torch.matmul(grad.reshape(1, t * b, d), self._o_heads[layer])  # [H, T·B, dh]
        keys = torch.bmm(
            self._grouped_patterns[layer], per_head.view(w.kv_heads, -1, b * w.head_dim)
        )  # [kv, T, B·dh]
        values = keys.view(w.kv_heads, t * b, w.head_dim).transpose(0, 1).reshape(t * b, -1)
        return (values @ w.v_weight).view(t, b, d) * self.frozen.attn_multiplier[layer][:, None]

    def backward(self, layers: Tensor, positions: Tensor, vectors: Tensor) -> Iterator[tuple[int, Tensor]]:
        """The gradients of B reads — row b reads `vectors[b]` at position `positions[b]` of layer
        `layers[b]`'s normalised MLP input, or of the final norm's output when `layers[b]` is the
        number of layers; rows sorted by layer, highest first — by the transposed linear map, layer
        by layer (no forward pass: the map is linear). Yields, from the last layer down, `(layer,
        gradient [T, live, d])` with respect to what is added to that layer's MLP output, for the
        first `live` rows (the others, whose targets lie below, have none there), then `(-1,
        gradient [T, B, d])` with respect to the embeddings.

        Going down, a layer's gradient passes the residual stream unchanged, the skip path `W_skip`
        through the frozen MLP norm, and the attention's value/output path through the frozen
        patterns and input norm (`attend_transposed`); the latents and errors the MLP also writes
        are sources, so nothing else passes."""
        if bool((layers[1:] > layers[:-1]).any()):
            raise ValueError("backward needs its rows sorted by layer, highest first")
        n_pos, d = self.frozen.embeddings.shape[0], vectors.shape[-1]
        final = int((layers == self.n_layers).sum())
        grad = torch.zeros(n_pos, final, d)
        grad[positions[:final], torch.arange(final)] = (
            self.frozen.final_multiplier[positions[:final]] * vectors[:final]
        )
        for layer in range(self.n_layers - 1, -1, -1):
            live = int((layers >= layer).sum())
            if live > grad.shape[1]:
                grad = torch.cat([grad, grad.new_zeros(n_pos, live - grad.shape[1], d)], dim=1)
            yield layer, grad
            if live == 0:
                continue
            here = torch.nonzero(layers[:live] == layer).flatten()
            reads = vectors[here] * self.frozen.mlp_multiplier[layer, positions[here]]
            skip = self.mlp_skip[layer]
            if skip is not None:
                h = grad + (grad @ skip) * self.frozen.mlp_multiplier[layer][:, None]
                h[positions[here], here] += reads
            elif here.numel():
                h = grad.clone()
                h[positions[here], here] += reads
            else:
                h = grad
            grad = h + self.attend_transposed(layer, h)
        if grad.shape[1] < layers.shape[0]:
            grad = torch.cat([grad, grad.new_zeros(n_pos, layers.shape[0] - grad.shape[1], d)], dim=1)
        yield -1, grad

    def check_reproduces(self, injections: Sequence[Tensor]) -> float:
        """Run with the true injections (latents' decoder outputs + errors, [T, d] per layer) and
        refuse (SaescopeError) a replacement whose logits differ from the real model's; returns the
        largest relative difference."""
        sites = self.run(self.frozen.embeddings[None], [i[None] for i in injections])
        assert sites.final is not None
        logits = sites.final[0, -1] @ self.unembed.T
        real = self.frozen.logits
        gap = ((logits - real).abs().max() / real.abs().max().clamp_min(1e-12)).item()
        if gap > REPRODUCE_TOLERANCE:
            raise SaescopeError(
                f"the replacement model does not reproduce the model's logits (relative gap {gap:.2e}): "
                "this architecture is not supported"
            )
        return gap


__all__ = [
    "AttentionWeights",
    "FrozenPrompt",
    "Layers",
    "LinearReplacement",
    "Sites",
    "attention_weights",
    "eager_attention",
    "freeze_prompt",
    "llama_layers",
]
