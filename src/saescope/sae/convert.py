"""Import and export SAEs in the formats users already have (DESIGN.md, "Formats").

- SAELens (v6 layout): `cfg.json` + `sae_weights.safetensors` with `W_enc [d_in, d_sae]`,
  `W_dec [d_sae, d_in]`, `b_enc`, `b_dec` (+ `threshold`). Architectures `standard` (ReLU), `topk`,
  `jumprelu` and `batchtopk` training checkpoints; import and export.
- sparsify (EleutherAI 1.x): a folder per hookpoint with `cfg.json` + `sae.safetensors` holding
  `encoder.weight [M, d_in]`, `encoder.bias [M]`, `W_dec [M, d_in]`, `b_dec [d_in]`; TopK only;
  import and export.
- Gemma Scope: `params.npz` with `W_enc`, `W_dec`, `b_enc`, `b_dec`, `threshold`, a JumpReLU whose
  pre-activation is x @ W_enc + b_enc; import only.

A converted SAE reproduces the source's encode and decode to float tolerance. The differences
between the formats are folded into the weights, in float64:
- no b_dec on the input (`apply_b_dec_to_input: false`, Gemma Scope): b_enc ← b_enc + b_dec @ W_enc;
- SAELens TopK `rescale_acts_by_decoder_norm` (latents scaled by ‖W_dec_j‖ and unscaled before
  decoding): W_enc ← W_enc·n, b_enc ← b_enc·n, W_dec ← W_dec/n, which gives the same latents;
- thresholds below 0 become 0 (both sources compute ReLU(z)·H(z − θ), ours z·H(z − θ)).
Settings that cannot be folded exactly (input normalisations computed per token, skip
connections, transcoders, other activations) are refused with a SaescopeError.

This module knows nothing about training; it reads and writes files only (no other library is
imported: the formats are read directly).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import ConvertConfig
from ..errors import ConfigError, SaescopeError
from .base import SAEConfig, SparseAutoencoder
from .io import (
    CFG_FILE,
    FORMAT,
    build_sae,
    check_shapes,
    dtype_name,
    load_sae,
    read_json,
    read_safetensors,
    save_sae,
    write_json_atomic,
    write_safetensors_atomic,
)

log = logging.getLogger(__name__)

FORMATS_IN = ("native", "saelens", "sparsify", "gemmascope")
"""Formats `convert` reads."""
FORMATS_OUT = ("native", "saelens", "sparsify")
"""Formats `convert` writes."""

SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
GEMMASCOPE_FILE = "params.npz"

# The cfg.json "layout version" SAELens's loader reads to know a file uses its v6 layout.
SAELENS_LAYOUT_VERSION = "6.0.0"

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

# TransformerLens hook names (what SAELens records) <-> saescope's short hookpoint forms.
_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_(resid_post|resid_pre|mlp_out|attn_out)$")
_SHORT_HOOK = re.compile(r"^(resid_post|resid_pre|mlp_out|attn_out):(\d+)$")
_LAYER_MODULE = re.compile(r"^(?:model\.layers|transformer\.h|gpt_neox\.layers)\.(\d+)$")


def hookpoint_from_transformerlens(hook_name: str) -> str:
    """`blocks.8.hook_resid_post` -> `resid_post:8`; other names are kept as they are."""
    m = _TL_HOOK.match(hook_name)
    return f"{m.group(2)}:{m.group(1)}" if m else hook_name


def hookpoint_to_transformerlens(hookpoint: str) -> str:
    """`resid_post:8` or a decoder layer's module path (its output is resid_post) ->
    `blocks.8.hook_resid_post`; other names are kept as they are."""
    if m := _SHORT_HOOK.match(hookpoint):
        return f"blocks.{m.group(2)}.hook_{m.group(1)}"
    if m := _LAYER_MODULE.match(hookpoint):
        return f"blocks.{m.group(1)}.hook_resid_post"
    return hookpoint


# ----- shared helpers ---------------------------------------------------------------------------
def _require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")


def _int_field(cfg: dict[str, Any], key: str, source: Path) -> int:
    value = cfg.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SaescopeError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _parse_dtype(name: Any, fallback: torch.dtype) -> torch.dtype:
    if isinstance(name, str):
        return _DTYPES.get(name.removeprefix("torch."), fallback)
    return fallback


def _fold_b_dec_into_b_enc(W_enc: Tensor, b_enc: Tensor, b_dec: Tensor) -> Tensor:
    """b_enc + b_dec @ W_enc: (x − b_dec) @ W_enc + that == x @ W_enc + b_enc."""
    return b_enc + b_dec @ W_enc


def _assemble(
    cfg: SAEConfig, tensors: dict[str, Tensor], source: Path, dtype: torch.dtype
) -> SparseAutoencoder:
    """Build an SAE of cfg's architecture holding `tensors` (float64, native layout) in `dtype`."""
    sae = build_sae(cfg, source, dtype=dtype)
    try:
        sae.load_file_tensors({name: t.to(dtype) for name, t in tensors.items()})
    except SaescopeError as e:
        raise SaescopeError(f"{source}: {e}") from None
    return sae.eval()


def _provenance(fmt: str, source: Path, **details: Any) -> dict[str, Any]:
    return {"source": {"format": fmt, "path": str(source), **details}}


def _jsonable(value: Any) -> Any:
    """Keep only what JSON can hold (metadata of other tools may carry anything)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


# ----- SAELens ----------------------------------------------------------------------------------
_SAELENS_ARCHS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "batchtopk"}
_SAELENS_NORMALIZATIONS = {
    "expected_average_only_in": "its scaling factor was not folded into the weights (fold it with "
    "SAELens's fold_activation_norm_scaling_factor and save again)",
    "constant_norm_rescale": "it rescales every token to norm sqrt(d_in) at run time",
    "layer_norm": "it layer-normalises every token at run time",
    "covariance_whitening": "its whitening is not folded into the weights (fold it with SAELens's "
    "fold_activation_whitening and save again)",
}


def load_saelens(folder: str | Path) -> SparseAutoencoder:
    """Import an SAELens SAE folder (`cfg.json` + `sae_weights.safetensors`), in eval mode."""
    folder = Path(folder)
    _require_folder(folder)
    cfg_path = folder / CFG_FILE
    raw = read_json(cfg_path)
    if raw.get("format") == FORMAT:
        raise SaescopeError(f"{folder} holds a native saescope SAE, not an SAELens one (use --from native)")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)

    # SAELens < 6 wrote the activation into `activation_fn(_str)` and had no architecture field.
    src_arch = raw.get("architecture", "standard")
    activation = raw.get("activation_fn", raw.get("activation_fn_str"))
    kwargs = raw.get("activation_fn_kwargs") or {}
    if src_arch == "standard" and activation == "topk" and isinstance(kwargs, dict) and "k" in kwargs:
        src_arch, raw = "topk", {**raw, "k": kwargs["k"]}
    elif src_arch == "standard" and activation not in (None, "relu"):
        raise SaescopeError(f"{cfg_path}: SAELens activation {activation!r} is not supported (relu or topk)")
    if src_arch not in _SAELENS_ARCHS:
        raise SaescopeError(
            f"{cfg_path}: SAELens architecture {src_arch!r} is not supported"
            f" (supported: {', '.join(_SAELENS_ARCHS)})"
        )
    norm = raw.get("normalize_activations", "none")
    norm = {None: "none", False: "none", True: "expected_average_only_in"}.get(norm, norm)
    if norm != "none":
        why = _SAELENS_NORMALIZATIONS.get(norm, "it is unknown to saescope")
        raise SaescopeError(f"{cfg_path}: cannot import normalize_activations={norm!r} exactly: {why}")

    d_in, d_sae = _int_field(raw, "d_in", cfg_path), _int_field(raw, "d_sae", cfg_path)
    weights_path = folder / SAELENS_WEIGHTS
    tensors = read_safetensors(weights_path)
    dtype = _parse_dtype(raw.get("dtype"), tensors["W_enc"].dtype if "W_enc" in tensors else torch.float32)
    if "scaling_factor" in tensors and not bool((tensors["scaling_factor"] == 1).all()):
        raise SaescopeError(f"{weights_path}: a finetuning scaling_factor other than 1 is not supported")
    if src_arch == "jumprelu" and "threshold" not in tensors and "log_threshold" in tensors:
        tensors = {**tensors, "threshold": tensors["log_threshold"].double().exp()}
    if src_arch == "batchtopk" and "threshold" not in tensors and "topk_threshold" in tensors:
        tensors = {**tensors, "threshold": tensors["topk_threshold"].double().reshape(()).expand(d_sae)}
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if src_arch in ("jumprelu", "batchtopk"):
        expected["threshold"] = (d_sae,)
    check_shapes(tensors, expected, weights_path, f"SAELens {src_arch} SAE with d_in={d_in}, d_sae={d_sae}")

    t = {name: tensors[name].double() for name in expected}
    if not raw.get("apply_b_dec_to_input", True):
        t["b_enc"] = _fold_b_dec_into_b_enc(t["W_enc"], t["b_enc"], t["b_dec"])
    if src_arch in ("topk", "batchtopk") and raw.get("rescale_acts_by_decoder_norm", False):
        # SAELens multiplies the pre-activations by ‖W_dec_j‖ (unclamped) and divides the latents by
        # it before decoding; a zero row never contributes, so it stays zero here.
        norms = t["W_dec"].norm(dim=1)
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        t["W_enc"] = t["W_enc"] * norms
        t["b_enc"] = t["b_enc"] * norms
        t["W_dec"] = t["W_dec"] / safe[:, None]
    if "threshold" in t:
        t["threshold"] = t["threshold"].clamp_min(0)

    k: int | None = None
    if src_arch in ("topk", "batchtopk"):
        k = _int_field(raw, "k", cfg_path)
    hook_name = metadata.get("hook_name") or raw.get("hook_name") or raw.get("hook_point") or ""
    model_name = metadata.get("model_name") or raw.get("model_name") or ""
    hookpoint = hookpoint_from_transformerlens(str(hook_name)) if hook_name else ""
    cfg = SAEConfig(
        architecture=_SAELENS_ARCHS[src_arch],
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        model=str(model_name),
        hookpoint=hookpoint,
        hookpoint_alias=hookpoint,
        dtype=dtype_name(dtype),
        training=_provenance(
            "saelens",
            folder,
            architecture=src_arch,
            hook_name=hook_name,
            apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
            reshape_activations=raw.get("reshape_activations", "none"),
            metadata=_jsonable(metadata),
        ),
    )
    return _assemble(cfg, t, weights_path, dtype)


def save_saelens(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Export `sae` as an SAELens v6 folder (BatchTopK as JumpReLU, as SAELens itself saves it)."""
    folder = Path(folder)
    arch = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}.get(
        sae.architecture
    )
    if arch is None:
        raise SaescopeError(f"cannot export a {sae.architecture!r} SAE to SAELens")
    source = sae.cfg.training.get("source", {}) if isinstance(sae.cfg.training, dict) else {}
    from_saelens = isinstance(source, dict) and source.get("format") == "saelens"
    metadata: dict[str, Any] = {}
    if from_saelens and isinstance(source.get("metadata"), dict):
        metadata.update(source["metadata"])
    hook_name = hookpoint_to_transformerlens(sae.cfg.hookpoint_alias or sae.cfg.hookpoint)
    # An SAE imported from SAELens gets its own hook name back (unless its hookpoint was changed).
    original = str(source.get("hook_name") or "") if from_saelens else ""
    if original and hookpoint_from_transformerlens(original) == sae.cfg.hookpoint:
        hook_name = original
    metadata.update(
        {"sae_lens_version": SAELENS_LAYOUT_VERSION, "model_name": sae.cfg.model, "hook_name": hook_name}
    )
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": dtype_name(sae.W_enc.dtype),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if arch == "topk":
        cfg.update({"k": sae.cfg.k, "rescale_acts_by_decoder_norm": False})
    tensors = sae.file_tensors()
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(tensors, folder / SAELENS_WEIGHTS)
    write_json_atomic(cfg, folder / CFG_FILE)
    log.info("exported %s SAE to SAELens %s in %s", sae.architecture, arch, folder)
    return folder


# ----- sparsify ---------------------------------------------------------------------------------
def load_sparsify(folder: str | Path) -> SparseAutoencoder:
    """Import an EleutherAI sparsify SAE folder (one hookpoint: `cfg.json` + `sae.safetensors`)."""
    folder = Path(folder)
    _require_folder(folder)
    cfg_path = folder / CFG_FILE
    raw = read_json(cfg_path)
    if raw.get("format") == FORMAT:
        raise SaescopeError(f"{folder} holds a native saescope SAE, not a sparsify one (use --from native)")
    if raw.get("transcode"):
        raise SaescopeError(f"{cfg_path}: sparsify transcoders are not supported (only autoencoders)")
    if raw.get("skip_connection"):
        raise SaescopeError(f"{cfg_path}: sparsify SAEs with a skip connection are not supported")
    activation = raw.get("activation", "topk")
    if activation != "topk":
        raise SaescopeError(f"{cfg_path}: sparsify activation {activation!r} is not supported (only topk)")
    d_in = _int_field(raw, "d_in", cfg_path)
    k = _int_field(raw, "k", cfg_path)
    num_latents = raw.get("num_latents") or 0
    d_sae = (
        _int_field(raw, "num_latents", cfg_path)
        if num_latents
        else d_in * _int_field(raw, "expansion_factor", cfg_path)
    )
    weights_path = folder / SPARSIFY_WEIGHTS
    tensors = read_safetensors(weights_path)
    if "W_skip" in tensors:
        raise SaescopeError(f"{weights_path}: sparsify SAEs with a skip connection are not supported")
    expected = {
        "encoder.weight": (d_sae, d_in),
        "encoder.bias": (d_sae,),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
    }
    check_shapes(tensors, expected, weights_path, f"sparsify SAE with d_in={d_in}, num_latents={d_sae}")
    dtype = tensors["encoder.weight"].dtype
    # sparsify records no hookpoint in the file: its folder is named after it (`layers.6`).
    cfg = SAEConfig(
        architecture="topk",
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        hookpoint=folder.name,
        hookpoint_alias=folder.name,
        dtype=dtype_name(dtype),
        training=_provenance("sparsify", folder, config=_jsonable(raw)),
    )
    native = {
        "W_enc": tensors["encoder.weight"].double().t(),
        "b_enc": tensors["encoder.bias"].double(),
        "W_dec": tensors["W_dec"].double(),
        "b_dec": tensors["b_dec"].double(),
    }
    return _assemble(cfg, native, weights_path, dtype)


def save_sparsify(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Export a TopK `sae` as a sparsify folder (`SparseCoder.load_from_disk(folder)` reads it)."""
    folder = Path(folder)
    if sae.architecture != "topk":
        raise SaescopeError(f"sparsify holds only TopK SAEs; cannot export a {sae.architecture!r} SAE")
    norms = sae.W_dec.detach().float().norm(dim=1)
    unit_rows = bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-4))
    cfg = {
        "activation": "topk",
        "expansion_factor": max(sae.d_sae // sae.d_in, 1),
        "normalize_decoder": unit_rows,
        "num_latents": sae.d_sae,
        "k": sae.cfg.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": sae.d_in,
    }
    tensors = {
        "encoder.weight": sae.W_enc.detach().t(),
        "encoder.bias": sae.b_enc.detach(),
        "W_dec": sae.W_dec.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(tensors, folder / SPARSIFY_WEIGHTS, metadata={"format": "pt"})
    write_json_atomic(cfg, folder / CFG_FILE)
    log.info("exported TopK SAE to sparsify format in %s", folder)
    return folder


# ----- Gemma Scope ------------------------------------------------------------------------------
def load_gemmascope(path: str | Path) -> SparseAutoencoder:
    """Import a Gemma Scope `params.npz` (the file, or a folder holding it) as a JumpReLU SAE."""
    path = Path(path)
    file = path / GEMMASCOPE_FILE if path.is_dir() else path
    if not file.is_file():
        raise SaescopeError(f"Gemma Scope params not found: {file}")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SaescopeError(f"cannot read {file}: {e}") from None
    if "W_enc" not in arrays or arrays["W_enc"].ndim != 2:
        raise SaescopeError(
            f"{file} has no 2-D W_enc (a Gemma Scope params.npz holds W_enc, W_dec, b_enc, b_dec, threshold)"
        )
    d_in, d_sae = (int(n) for n in arrays["W_enc"].shape)
    tensors = {name: torch.from_numpy(a.copy()) for name, a in arrays.items() if a.dtype.kind == "f"}
    expected = {
        "W_enc": (d_in, d_sae),
        "b_enc": (d_sae,),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
        "threshold": (d_sae,),
    }
    check_shapes(tensors, expected, file, f"Gemma Scope SAE with d_in={d_in}, d_sae={d_sae}")
    dtype = tensors["W_enc"].dtype if tensors["W_enc"].dtype in _DTYPES.values() else torch.float32
    t = {name: tensors[name].double() for name in expected}
    t["b_enc"] = _fold_b_dec_into_b_enc(t["W_enc"], t["b_enc"], t["b_dec"])
    t["threshold"] = t["threshold"].clamp_min(0)
    cfg = SAEConfig(
        architecture="jumprelu",
        d_in=d_in,
        d_sae=d_sae,
        dtype=dtype_name(dtype),
        training=_provenance("gemmascope", file),
    )
    return _assemble(cfg, t, file, dtype)


# ----- the stage ----------------------------------------------------------------------------------
READERS: dict[str, Callable[[Path], SparseAutoencoder]] = {
    "native": load_sae,
    "saelens": load_saelens,
    "sparsify": load_sparsify,
    "gemmascope": load_gemmascope,
}
WRITERS: dict[str, Callable[[SparseAutoencoder, Path], Path]] = {
    "native": save_sae,
    "saelens": save_saelens,
    "sparsify": save_sparsify,
}


def detect_format(folder: Path) -> str | None:
    """Which format a folder holds by its files (None when it holds no SAE)."""
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        return "gemmascope" if (folder / GEMMASCOPE_FILE).is_file() else None
    try:
        raw = read_json(cfg_path)
    except SaescopeError:
        return "unknown"
    if raw.get("format") == FORMAT:
        return "native"
    if (folder / SAELENS_WEIGHTS).is_file():
        return "saelens"
    if "num_latents" in raw or "expansion_factor" in raw:
        return "sparsify"
    return "unknown"


def convert(cfg: ConvertConfig) -> Path:
    """Read the SAE at `cfg.sae_dir` in `cfg.from_format` and write it to `cfg.out` in `cfg.to_format`.

    The model and hookpoint come from the source where it records them, else from `cfg.model` and
    `cfg.hookpoint`. Refuses to write over the source or over an SAE of another format in `out`.
    """
    if cfg.from_format not in FORMATS_IN:
        raise ConfigError(f"unknown source format {cfg.from_format!r}; choose from {', '.join(FORMATS_IN)}")
    if cfg.to_format not in FORMATS_OUT:
        raise ConfigError(f"unknown target format {cfg.to_format!r}; choose from {', '.join(FORMATS_OUT)}")
    source, out = Path(cfg.sae_dir), Path(cfg.out)
    if not source.exists():
        raise SaescopeError(f"SAE not found: {source}")
    source_folder = source if source.is_dir() else source.parent
    if out.exists() and out.resolve() == source_folder.resolve() and cfg.from_format != "gemmascope":
        raise ConfigError(f"--out {out} is the source folder; write the converted SAE somewhere else")
    if out.is_dir():
        present = detect_format(out)
        if present not in (None, "gemmascope", cfg.to_format):
            raise ConfigError(f"{out} already holds a {present} SAE; choose another --out to keep it")

    sae = READERS[cfg.from_format](source)
    if cfg.from_format == "sparsify" and cfg.hookpoint:
        # sparsify records its hookpoint only as the folder's name, which --hookpoint overrides.
        sae.cfg = sae.cfg.with_updates(hookpoint=cfg.hookpoint, hookpoint_alias=cfg.hookpoint)
    sae.cfg = _fill_identity(sae.cfg, cfg.model, cfg.hookpoint)
    WRITERS[cfg.to_format](sae, out)
    log.info("converted %s (%s) to %s (%s)", source, cfg.from_format, out, cfg.to_format)
    return out


def _fill_identity(sae_cfg: SAEConfig, model: str | None, hookpoint: str | None) -> SAEConfig:
    changes: dict[str, Any] = {}
    if sae_cfg.model:
        if model and model != sae_cfg.model:
            log.warning("the source records model %r; keeping it (not --model %r)", sae_cfg.model, model)
    elif model:
        changes["model"] = model
    else:
        log.warning("the source does not record its model; pass --model to record it")
    if sae_cfg.hookpoint:
        if hookpoint and hookpoint != sae_cfg.hookpoint:
            log.warning(
                "the source records hookpoint %r; keeping it (not --hookpoint %r)",
                sae_cfg.hookpoint,
                hookpoint,
            )
    elif hookpoint:
        changes["hookpoint"] = changes["hookpoint_alias"] = hookpoint
    else:
        log.warning("the source does not record its hookpoint; pass --hookpoint to record it")
    return sae_cfg.with_updates(**changes)
