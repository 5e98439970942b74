"""Hookpoint names ↔ modules of a model.

Module paths of the model (`model.layers.15.mlp`; `*` matches one path component, `**` several), a
module path followed by `:input` (the module's input), and the short forms `resid_pre:L`,
`resid_post:L`, `mlp_in:L`, `mlp_out:L`, `attn_out:L` (negative L counts from the end, `*` means every
layer). `mlp_in:L` is the MLP's input (`model.layers.L.mlp:input`: after the post-attention norm),
what a transcoder reads; `output_of` gives the output of the module whose input a hookpoint is
(`mlp_in:L` → `mlp_out:L`), what it reconstructs.
The decoder-layer list and the MLP / attention submodules are found by name for the common
Hugging Face causal LMs, with a structural fallback. Unknown names fail with the valid ones.

This module knows nothing about loading models, hooks, corpora or stores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .errors import SaescopeError

HookKind = Literal["output", "input"]


@dataclass(frozen=True)
class Hookpoint:
    """One place in the model whose activations are read or patched."""

    name: str
    """Canonical name: the module path for outputs, `<module_path>:input` for inputs."""
    alias: str
    """The short form (`resid_post:15`) when there is one, else the name."""
    module_path: str
    """Path of the hooked module in `model.named_modules()`."""
    kind: HookKind
    """`output`: the module's output (first element of a tuple); `input`: its first input."""
    layer: int | None
    """Index of the decoder layer the hookpoint lies in (None outside the layer stack)."""


_LAYER_LIST_PATHS = (
    "model.layers",  # Llama, Mistral, Qwen, Gemma, Phi-3, OLMo, …
    "model.language_model.layers",  # Gemma 3, Llava-style multimodal wrappers
    "model.decoder.layers",  # OPT
    "transformer.h",  # GPT-2, GPT-J, Falcon, Bloom
    "gpt_neox.layers",  # Pythia / GPT-NeoX
    "transformer.blocks",  # MPT
    "transformer.layers",
    "layers",  # a bare decoder (LlamaModel)
    "h",  # a bare GPT-2 model
)
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe", "fc2")
_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention", "mixer")
_SHORT_FORMS = ("resid_pre", "resid_post", "mlp_in", "mlp_out", "attn_out")
_INPUT_FORMS = ("resid_pre", "mlp_in")


@dataclass(frozen=True)
class _LayerInfo:
    path: str
    count: int
    mlp: str | None
    attn: str | None


def _find_layers(model: nn.Module) -> _LayerInfo:
    modules = dict(model.named_modules())
    layers_path = next(
        (p for p in _LAYER_LIST_PATHS if isinstance(modules.get(p), nn.ModuleList) and len(modules[p]) > 0),
        None,
    )
    if layers_path is None:
        # Fallback: the longest ModuleList of blocks of one class is the layer stack.
        best: tuple[int, str] | None = None
        for path, module in modules.items():
            uniform = isinstance(module, nn.ModuleList) and len({type(block) for block in module}) == 1
            if uniform and len(module) > 1 and (best is None or len(module) > best[0]):
                best = (len(module), path)
        if best is None:
            raise SaescopeError(f"cannot find the decoder layers of {type(model).__name__}")
        layers_path = best[1]
    layers = modules[layers_path]
    assert isinstance(layers, nn.ModuleList)
    children = dict(layers[0].named_children())
    mlp = next((n for n in _MLP_NAMES if n in children), None)
    attn = next((n for n in _ATTN_NAMES if n in children), None)
    return _LayerInfo(path=layers_path, count=len(layers), mlp=mlp, attn=attn)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A module-path glob as a regex: `*` matches within one path component, `**` across them."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _valid_summary(info: _LayerInfo, model: nn.Module) -> str:
    last = info.count - 1
    forms = ["resid_pre", "resid_post"]
    if info.mlp:
        forms += ["mlp_in", "mlp_out"]
    if info.attn:
        forms.append("attn_out")
    modules = dict(model.named_modules())
    children = sorted(dict(modules[f"{info.path}.0"].named_children()))
    example = f"{info.path}.{{0..{last}}}"
    if children:
        example += f", {info.path}.{{0..{last}}}.{{{','.join(children)}}}"
    short = ", ".join(f"{f}:0..{last}" for f in forms)
    return f"valid: {short}, or module paths like {example} (add :input for inputs)"


def _layer_of(path: str, info: _LayerInfo) -> int | None:
    prefix = info.path + "."
    if not path.startswith(prefix):
        return None
    head = path[len(prefix) :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _alias_of(module_path: str, kind: HookKind, info: _LayerInfo) -> str:
    layer = _layer_of(module_path, info)
    if layer is None:
        return module_path if kind == "output" else f"{module_path}:input"
    base = f"{info.path}.{layer}"
    if module_path == base:
        return f"resid_post:{layer}" if kind == "output" else f"resid_pre:{layer}"
    if info.mlp and module_path == f"{base}.{info.mlp}":
        return f"mlp_out:{layer}" if kind == "output" else f"mlp_in:{layer}"
    if kind == "output" and info.attn and module_path == f"{base}.{info.attn}":
        return f"attn_out:{layer}"
    return module_path if kind == "output" else f"{module_path}:input"


def _make(module_path: str, kind: HookKind, info: _LayerInfo) -> Hookpoint:
    name = module_path if kind == "output" else f"{module_path}:input"
    return Hookpoint(
        name=name,
        alias=_alias_of(module_path, kind, info),
        module_path=module_path,
        kind=kind,
        layer=_layer_of(module_path, info),
    )


def _resolve_one(spec: str, model: nn.Module, info: _LayerInfo, module_names: list[str]) -> list[Hookpoint]:
    def unknown() -> SaescopeError:
        return SaescopeError(f"unknown hookpoint {spec!r}; {_valid_summary(info, model)}")

    form, sep, arg = spec.partition(":")
    if sep and form in _SHORT_FORMS:
        if arg == "*":
            layers = list(range(info.count))
        else:
            try:
                layer = int(arg)
            except ValueError:
                raise unknown() from None
            if not -info.count <= layer < info.count:
                raise unknown()
            layers = [layer % info.count]
        sub = {"mlp_in": info.mlp, "mlp_out": info.mlp, "attn_out": info.attn}.get(form, "")
        if sub is None:
            raise unknown()
        kind: HookKind = "input" if form in _INPUT_FORMS else "output"
        return [_make(f"{info.path}.{i}" + (f".{sub}" if sub else ""), kind, info) for i in layers]
    if sep and arg != "input":
        raise unknown()
    kind = "input" if sep else "output"
    if any(c in form for c in "*?["):
        regex = _glob_regex(form)
        matches = [n for n in module_names if regex.match(n)]
    else:
        matches = [form] if form in module_names else []
    if not matches:
        raise unknown()
    return [_make(path, kind, info) for path in matches]


def resolve_hookpoints(model: nn.Module, specs: Sequence[str]) -> list[Hookpoint]:
    """The hookpoints `specs` name, in the order given (globs expand in module order; duplicates dropped).

    Raises `SaescopeError` naming the bad spec and the valid names for an unknown name or an
    out-of-range layer.
    """
    info = _find_layers(model)
    module_names = [n for n, _ in model.named_modules() if n]
    seen: dict[str, Hookpoint] = {}
    for spec in specs:
        for hookpoint in _resolve_one(spec.strip(), model, info, module_names):
            seen.setdefault(hookpoint.name, hookpoint)
    return list(seen.values())


def output_of(model: nn.Module, hookpoint: Hookpoint) -> Hookpoint:
    """The output of the module whose input `hookpoint` is (`mlp_in:L` → `mlp_out:L`): what a
    transcoder reading it reconstructs. `SaescopeError` for a hookpoint that is not an input."""
    if hookpoint.kind != "input":
        raise SaescopeError(
            f"{hookpoint.alias} is a module's output; a transcoder reads a module's input"
            " (mlp_in:L, or a module path followed by :input)"
        )
    return _make(hookpoint.module_path, "output", _find_layers(model))


def num_layers(model: nn.Module) -> int:
    """Number of decoder layers of `model`."""
    return _find_layers(model).count


def hookpoint_order(model: nn.Module, hookpoints: Sequence[Hookpoint]) -> list[Hookpoint]:
    """`hookpoints` sorted by when they fire in a forward pass (the last one fires last).

    Uses module registration order, which is execution order in Hugging Face decoder models: a
    module's input fires before its submodules run, its output after all of them.
    """
    names = [n for n, _ in model.named_modules()]
    index = {n: i for i, n in enumerate(names)}

    def key(h: Hookpoint) -> tuple[int, int, int]:
        start = index[h.module_path]
        depth = h.module_path.count(".")
        if h.kind == "input":
            return (start, 0, depth)
        prefix = h.module_path + "."
        end = start
        while end + 1 < len(names) and (not h.module_path or names[end + 1].startswith(prefix)):
            end += 1
        # A submodule's output fires before the output of the module that contains it.
        return (end, 1, -depth)

    return sorted(hookpoints, key=key)


def module_at(model: nn.Module, path: str) -> nn.Module:
    """The submodule at `path` (`""` is the model itself)."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise SaescopeError(f"model {type(model).__name__} has no module {path!r}") from None


__all__ = [
    "HookKind",
    "Hookpoint",
    "hookpoint_order",
    "module_at",
    "num_layers",
    "output_of",
    "resolve_hookpoints",
]
