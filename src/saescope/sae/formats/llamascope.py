"""Llama Scope (He et al. 2024, "Llama Scope: Extracting Millions of Features from Llama-3.1-8B
with Sparse Autoencoders"; trained with OpenMOSS's lm-saes): a folder with `hyperparams.json` and
`checkpoints/final.safetensors` holding `encoder.weight [d_sae, d_model]`, `encoder.bias [d_sae]`,
`decoder.weight [d_model, d_sae]`, `decoder.bias [d_model]` (bf16). Import only.

The SAE's own hyperparameters say how it runs (lm-saes's `SparseAutoEncoder.encode`); each is read
from the file, and one this module cannot reproduce exactly is refused, never guessed:

    s_in  = √d_model / dataset_average_activation_norm.in     (`norm_activation: dataset-wise`;
    s_out = √d_model / dataset_average_activation_norm.out     1 when it is `inference`)
    h     = (x·s_in − [b_dec if apply_decoder_bias_to_pre_encoder]) @ encoder.weightᵀ + encoder.bias
    z_j   = h_j · H(h_j·n_j − θ)      n_j = ‖decoder column j‖ if sparsity_include_decoder_norm, else 1
    x̂     = (z @ decoder.weightᵀ + decoder.bias) / s_out

with one JumpReLU threshold θ = `jump_relu_threshold` · s_in: the file's threshold is rescaled by
√d_model over the dataset's average activation norm, as SAELens's loader does
(`sae_lens.loading.pretrained_sae_loaders.get_llama_scope_config_from_hf`). `act_fn: relu` is θ = 0.
A `log_jumprelu_threshold` tensor (later lm-saes checkpoints), when present, gives one threshold
per latent instead, used as stored (as SAELens's loader of those checkpoints does).

Folded into saescope's JumpReLU (pre-activations and latents unchanged): W_enc = s_in·encoder.weightᵀ,
W_dec = decoder.weightᵀ / s_out, b_dec = decoder.bias / s_out, b_enc = encoder.bias −
[decoder.bias @ encoder.weightᵀ] + b_dec @ W_enc, threshold_j = θ / n_j. The matrices are scaled
in float32 (one rounding, far below bf16's), everything else in float64, the bias products a few
hundred rows at a time: a 131,072-latent SAE of Llama-3.1-8B is never held in float64.
A transcoder (its input hook is not its output hook) is refused: transcoders are not SAEs.

This module reads files only (lm-saes and SAELens are not imported).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ...errors import SaescopeError
from ...files import DTYPE_NAMES, dtype_name, read_json_object
from ..base import SAEConfig, SparseAutoencoder
from .common import assemble, check_shapes, int_field, provenance, read_safetensors
from .saelens import hookpoint_from_transformerlens

LLAMASCOPE_CONFIG = "hyperparams.json"
LLAMASCOPE_WEIGHTS = "checkpoints/final.safetensors"

_NORMALISATIONS = ("dataset-wise", "inference")


def _scales(raw: dict[str, Any], d_model: int, cfg_path: Path) -> tuple[float, float]:
    """(s_in, s_out): the factors the SAE multiplies its input by and divides its output by."""
    norm = raw.get("norm_activation", "dataset-wise")
    if norm not in _NORMALISATIONS:
        raise SaescopeError(
            f"{cfg_path}: norm_activation {norm!r} normalises each input at run time and cannot be "
            f"folded into the weights exactly (supported: {', '.join(_NORMALISATIONS)})"
        )
    if norm == "inference":
        return 1.0, 1.0
    averages = raw.get("dataset_average_activation_norm")
    if not isinstance(averages, dict):
        raise SaescopeError(f"{cfg_path}: dataset-wise normalisation without dataset_average_activation_norm")
    scales = []
    for side in ("in", "out"):
        value = averages.get(side)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise SaescopeError(
                f"{cfg_path}: dataset_average_activation_norm.{side} must be a positive number, got {value!r}"
            )
        scales.append(math.sqrt(d_model) / float(value))
    return scales[0], scales[1]


def _threshold(
    raw: dict[str, Any], tensors: dict[str, torch.Tensor], s_in: float, cfg_path: Path
) -> torch.Tensor:
    """θ in the units of h (float64, a scalar or one per latent)."""
    act = str(raw.get("act_fn", "jumprelu")).lower()
    if act == "relu":
        return torch.zeros((), dtype=torch.float64)
    if act != "jumprelu":
        raise SaescopeError(f"{cfg_path}: act_fn {act!r} is not supported (jumprelu or relu)")
    if "log_jumprelu_threshold" in tensors:
        return tensors["log_jumprelu_threshold"].double().exp()
    value = raw.get("jump_relu_threshold")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise SaescopeError(f"{cfg_path}: jump_relu_threshold must be a number >= 0, got {value!r}")
    return torch.tensor(float(value) * s_in, dtype=torch.float64)


def matvec64(v: torch.Tensor, M: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """v @ M in float64, `rows` rows of M at a time (M is never whole in float64)."""
    out = torch.zeros(M.shape[1], dtype=torch.float64)
    for i in range(0, M.shape[0], rows):
        out += v[i : i + rows].double() @ M[i : i + rows].double()
    return out


def _hookpoint(raw: dict[str, Any], cfg_path: Path) -> str:
    hook_in, hook_out = raw.get("hook_point_in", ""), raw.get("hook_point_out", raw.get("hook_point_in", ""))
    if hook_in != hook_out:
        raise SaescopeError(
            f"{cfg_path}: a transcoder (reads {hook_in}, writes {hook_out}); only SAEs are supported"
        )
    return hookpoint_from_transformerlens(str(hook_in)) if hook_in else ""


def load_llamascope(folder: str | Path) -> SparseAutoencoder:
    """Import a Llama Scope folder (`hyperparams.json` + `checkpoints/final.safetensors`) as a
    JumpReLU SAE reading raw activations (see the module docstring)."""
    folder = Path(folder)
    cfg_path = folder / LLAMASCOPE_CONFIG
    if not folder.is_dir():
        raise SaescopeError(f"SAE folder not found: {folder}")
    raw = read_json_object(cfg_path, what="Llama Scope hyperparameters")
    d_model, d_sae = int_field(raw, "d_model", cfg_path), int_field(raw, "d_sae", cfg_path)
    hookpoint = _hookpoint(raw, cfg_path)
    s_in, s_out = _scales(raw, d_model, cfg_path)
    weights_path = folder / LLAMASCOPE_WEIGHTS
    tensors = read_safetensors(weights_path)
    expected = {
        "encoder.weight": (d_sae, d_model),
        "encoder.bias": (d_sae,),
        "decoder.weight": (d_model, d_sae),
    }
    use_decoder_bias = bool(raw.get("use_decoder_bias", True))
    if use_decoder_bias:
        expected["decoder.bias"] = (d_model,)
    described = f"Llama Scope SAE with d_model={d_model}, d_sae={d_sae}"
    check_shapes(tensors, expected, weights_path, described)
    theta = _threshold(raw, tensors, s_in, cfg_path)
    if theta.dim() and tuple(theta.shape) != (d_sae,):
        raise SaescopeError(
            f"{weights_path}: log_jumprelu_threshold has shape {list(theta.shape)}, not [{d_sae}]"
        )

    enc = tensors["encoder.weight"].float().t()  # [d_model, d_sae]
    dec = tensors["decoder.weight"].float().t()  # [d_sae, d_model]
    bias = tensors["decoder.bias"].double() if use_decoder_bias else torch.zeros(d_model, dtype=torch.float64)
    c = tensors["encoder.bias"].double()
    if use_decoder_bias and raw.get("apply_decoder_bias_to_pre_encoder", False):
        c = c - matvec64(bias, enc)
    if raw.get("sparsity_include_decoder_norm", False):
        norms = torch.linalg.vector_norm(dec, dim=1, dtype=torch.float64)
    else:
        norms = torch.ones(d_sae, dtype=torch.float64)
    threshold = torch.where(norms > 0, theta / norms.clamp_min(1e-300), torch.full_like(norms, math.inf))
    W_enc, W_dec, b_dec = s_in * enc, dec / s_out, bias / s_out
    native = {
        "W_enc": W_enc,
        "b_enc": c + matvec64(b_dec, W_enc),
        "W_dec": W_dec,
        "b_dec": b_dec,
        "threshold": threshold,
    }
    file_dtype = tensors["encoder.weight"].dtype
    dtype = file_dtype if dtype_name(file_dtype) in DTYPE_NAMES else torch.float32
    cfg = SAEConfig(
        architecture="jumprelu",
        d_in=d_model,
        d_sae=d_sae,
        model=str(raw.get("model_name") or ""),
        hookpoint=hookpoint,
        hookpoint_alias=hookpoint,
        dtype=dtype_name(dtype),
        training=provenance(
            "llamascope",
            folder,
            scale_in=s_in,
            scale_out=s_out,
            threshold=float(theta) if not theta.dim() else "per latent",
            hyperparams=raw,
        ),
    )
    return assemble(cfg, native, weights_path, dtype)
