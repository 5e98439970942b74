"""SAELens (v6 layout): `cfg.json` + `sae_weights.safetensors` with `W_enc [d_in, d_sae]`,
`W_dec [d_sae, d_in]`, `b_enc`, `b_dec` (+ `threshold`). Architectures `standard` (ReLU), `topk`,
`jumprelu`, `gated` (`b_gate`, `r_mag`, `b_mag` instead of `b_enc`; saescope's `b_enc` is the gate's
bias), and `batchtopk` and `matryoshka_batchtopk` training checkpoints (`topk_threshold`; a
Matryoshka SAE's `matryoshka_widths` become its group shares); import and export (BatchTopK and
Matryoshka export as JumpReLU, as SAELens saves them for inference). Transcoders: `saelens_transcoder`.

Differences folded into the weights, in float64: no b_dec on the input
(`apply_b_dec_to_input: false`): b_enc ← b_enc + b_dec @ W_enc (and a gated SAE's
b_mag ← b_mag + exp(r_mag)·(b_dec @ W_enc)); TopK-style `rescale_acts_by_decoder_norm`
(latents scaled by ‖W_dec_j‖ and unscaled before decoding): W_enc ← W_enc·n, b_enc ← b_enc·n,
W_dec ← W_dec/n, which gives the same latents; thresholds below 0 become 0 (SAELens computes
ReLU(z)·H(z − θ), saescope z·H(z − θ)). Input normalisations computed per token are refused.

This module reads and writes files only (SAELens itself is not imported).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from ...errors import SaescopeError
from ...files import dtype_name, write_json, write_safetensors
from ..base import SAEConfig, SparseAutoencoder
from .common import (
    CFG_FILE,
    assemble,
    check_shapes,
    fold_b_dec_into_b_enc,
    int_field,
    parse_dtype,
    provenance,
    read_foreign_config,
    read_safetensors,
)
from .saelens_transcoder import SAELENS_TRANSCODERS, load_saelens_transcoder

log = logging.getLogger(__name__)

SAELENS_WEIGHTS = "sae_weights.safetensors"

# The cfg.json "layout version" SAELens's loader reads to know a file uses its v6 layout.
SAELENS_LAYOUT_VERSION = "6.0.0"

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


_SAELENS_ARCHS = {
    "standard": "relu",
    "topk": "topk",
    "jumprelu": "jumprelu",
    "batchtopk": "batchtopk",
    "gated": "gated",
    "matryoshka_batchtopk": "matryoshka",
}
_TOPK_STYLE = ("topk", "batchtopk", "matryoshka_batchtopk")
"""SAELens architectures with a `k` (and `rescale_acts_by_decoder_norm`)."""
_BATCH_TOPK = ("batchtopk", "matryoshka_batchtopk")
"""SAELens training checkpoints whose threshold is the scalar `topk_threshold`."""
_GATED_TENSORS = ("b_gate", "r_mag", "b_mag")
_SAELENS_NORMALIZATIONS = {
    "expected_average_only_in": "its scaling factor was not folded into the weights (fold it with "
    "SAELens's fold_activation_norm_scaling_factor and save again)",
    "constant_norm_rescale": "it rescales every token to norm sqrt(d_in) at run time",
    "layer_norm": "it layer-normalises every token at run time",
    "covariance_whitening": "its whitening is not folded into the weights (fold it with SAELens's "
    "fold_activation_whitening and save again)",
}


def saelens_architecture(raw: dict[str, Any], cfg_path: Path) -> tuple[str, dict[str, Any]]:
    """The SAELens architecture a cfg.json describes (and the cfg with `k` where SAELens < 6 kept it
    in `activation_fn_kwargs`); unsupported ones are refused."""
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
    return str(src_arch), raw


def check_normalization(raw: dict[str, Any], cfg_path: Path) -> None:
    """Refuse input normalisations that cannot be folded into the weights exactly."""
    norm = raw.get("normalize_activations", "none")
    norm = {None: "none", False: "none", True: "expected_average_only_in"}.get(norm, norm)
    if norm != "none":
        why = _SAELENS_NORMALIZATIONS.get(norm, "it is unknown to saescope")
        raise SaescopeError(f"{cfg_path}: cannot import normalize_activations={norm!r} exactly: {why}")


def matryoshka_groups(raw: dict[str, Any], d_sae: int, cfg_path: Path) -> list[float]:
    """Each group's share of the latents, from SAELens's `matryoshka_widths` (the prefixes' widths;
    SAELens adds `d_sae` when the last is smaller, and so does this)."""
    widths = raw.get("matryoshka_widths")
    valid = isinstance(widths, list) and all(isinstance(w, int) and not isinstance(w, bool) for w in widths)
    if valid and widths and widths[-1] < d_sae:
        widths = [*widths, d_sae]
    if not valid or not widths or any(b <= a for a, b in zip([0, *widths], widths)) or widths[-1] != d_sae:
        raise SaescopeError(
            f"{cfg_path}: matryoshka_widths must be increasing positive widths up to d_sae={d_sae},"
            f" got {raw.get('matryoshka_widths')!r}"
        )
    return [(b - a) / d_sae for a, b in zip([0, *widths], widths)]


def saelens_hyperparams(src_arch: str, raw: dict[str, Any], d_sae: int, cfg_path: Path) -> dict[str, Any]:
    """The saescope hyperparameters a SAELens cfg.json records (the others keep their defaults):
    BatchTopK's threshold learning rate (`topk_threshold_lr`, saescope's threshold momentum) and a
    Matryoshka SAE's groups. Training-only coefficients (L1, L0) are not imported."""
    out: dict[str, Any] = {}
    if src_arch in _BATCH_TOPK and "topk_threshold_lr" in raw:
        out["batchtopk_threshold_momentum"] = raw["topk_threshold_lr"]
    if src_arch == "matryoshka_batchtopk":
        out["matryoshka_groups"] = matryoshka_groups(raw, d_sae, cfg_path)
    return out


def fold_saelens(
    t: dict[str, torch.Tensor], src_arch: str, raw: dict[str, Any], norm_scaling_factor: float | None
) -> dict[str, torch.Tensor]:
    """SAELens's tensors (float64) with its differences folded in (see the module docstring):
    saescope's native tensors giving the same latents and reconstruction."""
    if norm_scaling_factor is not None:
        t["W_enc"], t["W_dec"] = t["W_enc"] * norm_scaling_factor, t["W_dec"] / norm_scaling_factor
        t["b_dec"] = t["b_dec"] / norm_scaling_factor
    if src_arch == "gated":
        t["b_enc"] = t.pop("b_gate")
    if not raw.get("apply_b_dec_to_input", True):
        if src_arch == "gated":
            t["b_mag"] = t["b_mag"] + t["r_mag"].exp() * (t["b_dec"] @ t["W_enc"])
        t["b_enc"] = fold_b_dec_into_b_enc(t["W_enc"], t["b_enc"], t["b_dec"])
    if src_arch in _TOPK_STYLE and raw.get("rescale_acts_by_decoder_norm", False):
        # SAELens multiplies the pre-activations by ‖W_dec_j‖ (unclamped) and divides the latents by
        # it before decoding; a zero row never contributes, so it stays zero here.
        norms = t["W_dec"].norm(dim=1)
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        t["W_enc"] = t["W_enc"] * norms
        t["b_enc"] = t["b_enc"] * norms
        t["W_dec"] = t["W_dec"] / safe[:, None]
    if "threshold" in t:
        t["threshold"] = t["threshold"].clamp_min(0)
    return t


def load_saelens(folder: str | Path, norm_scaling_factor: float | None = None) -> SparseAutoencoder:
    """Import an SAELens SAE folder (`cfg.json` + `sae_weights.safetensors`), in eval mode.

    `norm_scaling_factor`: the factor of an SAE saved with `normalize_activations:
    expected_average_only_in` (SAELens's registry records it per SAE), folded in as SAELens's
    `fold_activation_norm_scaling_factor` does: W_enc ← W_enc·s, W_dec ← W_dec/s, b_dec ← b_dec/s."""
    folder = Path(folder)
    cfg_path, raw = read_foreign_config(folder, "an SAELens")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    if raw.get("architecture") in SAELENS_TRANSCODERS:
        return load_saelens_transcoder(folder, raw, cfg_path)

    src_arch, raw = saelens_architecture(raw, cfg_path)
    scaled = (
        norm_scaling_factor is not None and raw.get("normalize_activations") == "expected_average_only_in"
    )
    check_normalization({**raw, "normalize_activations": "none"} if scaled else raw, cfg_path)

    d_in, d_sae = int_field(raw, "d_in", cfg_path), int_field(raw, "d_sae", cfg_path)
    weights_path = folder / SAELENS_WEIGHTS
    tensors = read_safetensors(weights_path)
    dtype = parse_dtype(raw.get("dtype"), tensors["W_enc"].dtype if "W_enc" in tensors else torch.float32)
    if "scaling_factor" in tensors and not bool((tensors["scaling_factor"] == 1).all()):
        raise SaescopeError(f"{weights_path}: a finetuning scaling_factor other than 1 is not supported")
    if src_arch == "jumprelu" and "threshold" not in tensors and "log_threshold" in tensors:
        tensors = {**tensors, "threshold": tensors["log_threshold"].double().exp()}
    if src_arch in _BATCH_TOPK and "threshold" not in tensors and "topk_threshold" in tensors:
        tensors = {**tensors, "threshold": tensors["topk_threshold"].double().reshape(()).expand(d_sae)}
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if src_arch in ("jumprelu", *_BATCH_TOPK):
        expected["threshold"] = (d_sae,)
    if src_arch == "gated":
        del expected["b_enc"]
        expected.update({name: (d_sae,) for name in _GATED_TENSORS})
    check_shapes(tensors, expected, weights_path, f"SAELens {src_arch} SAE with d_in={d_in}, d_sae={d_sae}")

    t = fold_saelens(
        {name: tensors[name].double() for name in expected},
        src_arch,
        raw,
        norm_scaling_factor if scaled else None,
    )

    k: int | None = None
    if src_arch in _TOPK_STYLE:
        k = int_field(raw, "k", cfg_path)
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
        hyperparams=saelens_hyperparams(src_arch, raw, d_sae, cfg_path),
        training=provenance(
            "saelens",
            folder,
            architecture=src_arch,
            hook_name=hook_name,
            apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
            reshape_activations=raw.get("reshape_activations", "none"),
            metadata=metadata,
        ),
    )
    return assemble(cfg, t, weights_path, dtype)


def save_saelens(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Export `sae` as an SAELens v6 folder (BatchTopK and Matryoshka as JumpReLU with their
    learnt threshold, as SAELens itself saves them for inference)."""
    folder = Path(folder)
    arch = {
        "relu": "standard",
        "topk": "topk",
        "jumprelu": "jumprelu",
        "batchtopk": "jumprelu",
        "matryoshka": "jumprelu",
        "gated": "gated",
    }.get(sae.architecture)
    if arch is None:
        raise SaescopeError(f"cannot export a {sae.architecture!r} SAE to SAELens")
    source = sae.cfg.training.source or {}
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
    if arch == "gated":
        # SAELens's gated SAE has no b_enc: the gate's bias is b_gate.
        tensors = {("b_gate" if name == "b_enc" else name): t for name, t in tensors.items()}
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / SAELENS_WEIGHTS, tensors)
    write_json(folder / CFG_FILE, cfg, indent=2)
    log.info("exported %s SAE to SAELens %s in %s", sae.architecture, arch, folder)
    return folder
