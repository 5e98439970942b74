"""SAELens's transcoders (`sae_lens.saes.transcoder`): the SAELens v6 folder layout (`cfg.json` +
`sae_weights.safetensors`) with `d_out`, `W_enc [d_in, d_sae]`, `b_enc`, `W_dec [d_sae, d_out]`,
`b_dec [d_out]`, `W_skip [d_out, d_in]` for the skip architectures, `threshold [d_sae]` for the
JumpReLU ones, `apply_b_dec_to_input: false`, and the output hook in `metadata.hook_name_out`.
Architectures: `transcoder` (ReLU), `skip_transcoder`, `jumprelu_transcoder`,
`jumprelu_skip_transcoder`; SAELens has no TopK transcoder.

A saescope transcoder (TopK) is written as `jumprelu_transcoder` (or `jumprelu_skip_transcoder`)
with thresholds calibrated on a sample of its inputs (`jumprelu_thresholds`, whose `Agreement`
with the original on held-out rows is returned) and its k in the `saescope_k` field, so saescope
reads its own export back as the exact TopK transcoder. A ReLU or JumpReLU transcoder from
elsewhere is refused in one line: saescope's transcoders are TopK. Hook names: `mlp_in:L` ↔
`blocks.L.mlp.hook_in`, `mlp_out:L` ↔ `blocks.L.hook_mlp_out`.

This module reads and writes files only (SAELens itself is not imported).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ...errors import SaescopeError
from ...files import dtype_name, write_json, write_safetensors
from ..base import SAEConfig, SparseAutoencoder
from .common import CFG_FILE, assemble, check_shapes, int_field, provenance, read_safetensors
from .jumprelu_thresholds import Agreement, calibrate_jumprelu

SAELENS_TRANSCODERS = ("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder")
"""SAELens's transcoder architectures."""
WEIGHTS = "sae_weights.safetensors"
_IN, _OUT = re.compile(r"^mlp_in:(\d+)$"), re.compile(r"^mlp_out:(\d+)$")
_TL_IN, _TL_OUT = re.compile(r"^blocks\.(\d+)\.mlp\.hook_in$"), re.compile(r"^blocks\.(\d+)\.hook_mlp_out$")


def to_transformerlens(hookpoint: str) -> str:
    """`mlp_in:3` → `blocks.3.mlp.hook_in`, `mlp_out:3` → `blocks.3.hook_mlp_out`; others kept."""
    if m := _IN.match(hookpoint):
        return f"blocks.{m.group(1)}.mlp.hook_in"
    if m := _OUT.match(hookpoint):
        return f"blocks.{m.group(1)}.hook_mlp_out"
    return hookpoint


def from_transformerlens(hook: str) -> str:
    """The inverse of `to_transformerlens`."""
    if m := _TL_IN.match(hook):
        return f"mlp_in:{m.group(1)}"
    if m := _TL_OUT.match(hook):
        return f"mlp_out:{m.group(1)}"
    return hook


def save_saelens_transcoder(tc: SparseAutoencoder, folder: str | Path, sample: Tensor) -> Agreement:
    """Write the TopK transcoder `tc` as an SAELens JumpReLU transcoder, thresholds calibrated on
    `sample` [N, d_in] (its inputs); returns the copy's agreement with `tc` on held-out rows."""
    if tc.architecture != "transcoder":
        raise SaescopeError(f"not a transcoder: a {tc.architecture!r} SAE")
    folder = Path(folder)
    calibrated = calibrate_jumprelu(tc, sample)
    tensors = dict(tc.file_tensors())
    tensors["threshold"] = calibrated.thresholds.to(tensors["b_enc"])
    skip = "W_skip" in tensors
    metadata = {
        "sae_lens_version": "6.0.0",
        "model_name": tc.cfg.model,
        "hook_name": to_transformerlens(tc.cfg.hookpoint_alias or tc.cfg.hookpoint),
        "hook_name_out": to_transformerlens(tc.cfg.output_hookpoint_alias or tc.cfg.output_hookpoint),
    }
    cfg: dict[str, Any] = {
        "architecture": "jumprelu_skip_transcoder" if skip else "jumprelu_transcoder",
        "d_in": tc.d_in,
        "d_sae": tc.d_sae,
        "d_out": tc.d_out,
        "dtype": dtype_name(tc.W_enc.dtype),
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
        "saescope_k": tc.k,
        "saescope_note": "a TopK transcoder; threshold calibrated so that JumpReLU approximates it",
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / WEIGHTS, tensors)
    write_json(folder / CFG_FILE, cfg, indent=2)
    return calibrated.agreement


def load_saelens_transcoder(folder: Path, raw: dict[str, Any], cfg_path: Path) -> SparseAutoencoder:
    """The TopK transcoder saescope wrote as an SAELens one (see the module docstring)."""
    if not isinstance(raw.get("saescope_k"), int):
        raise SaescopeError(
            f"{cfg_path}: SAELens {raw.get('architecture')!r} is a ReLU or JumpReLU transcoder; saescope's "
            "transcoders are TopK and cannot reproduce it exactly (only those saescope exported are read)"
        )
    d_in, d_sae, d_out = (int_field(raw, name, cfg_path) for name in ("d_in", "d_sae", "d_out"))
    weights = folder / WEIGHTS
    tensors = read_safetensors(weights)
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_out), "b_dec": (d_out,)}
    skip = "skip" in str(raw.get("architecture"))
    if skip:
        expected["W_skip"] = (d_out, d_in)
    check_shapes(tensors, expected, weights, f"SAELens transcoder {d_in} → {d_out} with d_sae={d_sae}")
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    reads = from_transformerlens(str(metadata.get("hook_name") or ""))
    writes = from_transformerlens(str(metadata.get("hook_name_out") or ""))
    cfg = SAEConfig(
        architecture="transcoder",
        d_in=d_in,
        d_sae=d_sae,
        k=int(raw["saescope_k"]),
        d_out=d_out,
        model=str(metadata.get("model_name") or ""),
        hookpoint=reads,
        hookpoint_alias=reads,
        output_hookpoint=writes,
        output_hookpoint_alias=writes,
        dtype=dtype_name(tensors["W_enc"].dtype),
        hyperparams={"transcoder_skip": skip},
        training=provenance("saelens", folder, architecture=raw.get("architecture"), metadata=metadata),
    )
    native = {name: tensors[name].double() for name in expected}
    return assemble(cfg, native, weights, tensors["W_enc"].dtype)


__all__ = [
    "SAELENS_TRANSCODERS",
    "from_transformerlens",
    "load_saelens_transcoder",
    "save_saelens_transcoder",
    "to_transformerlens",
]
