"""EleutherAI sparsify (1.x): a folder per hookpoint with `cfg.json` + `sae.safetensors` holding
`encoder.weight [M, d_in]`, `encoder.bias [M]`, `W_dec [M, d_in]`, `b_dec [d_in]`; TopK only; import
and export.

A sparsify transcoder (`--transcode`: `"transcode": true`) reads a module's input and reconstructs
its output, of the same width (sparsify has no d_out): its encoder subtracts no b_dec, and with
`"skip_connection": true` the file adds `W_skip [d_in, d_in]` (output += x @ W_skip.T). It reads as
saescope's TopK `transcoder` (the folder `layers.6.mlp` → `mlp_in:6` → `mlp_out:6`), and a
transcoder whose output is as wide as its input writes back exactly. A skip connection without
`transcode` is refused (saescope's SAEs have none).

sparsify records its hookpoint only as the folder's name, a module path of the base model
(`layers.6`, `layers.6.mlp`, `layers.6.self_attn`): kept as the hookpoint, with its short form
(`resid_post:6`, `mlp_out:6`, `attn_out:6`) as the alias a causal LM resolves. The model is the
`model` of the training run's `config.json` one folder up, when it is there (sparsify's trainer
writes it beside the hookpoint folders, as in EleutherAI/sae-llama-3-8b-32x).

This module reads and writes files only (sparsify itself is not imported).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from ...errors import SaescopeError
from ...files import dtype_name, read_json, write_json, write_safetensors
from ..base import SAEConfig, SparseAutoencoder
from .common import (
    CFG_FILE,
    assemble,
    check_shapes,
    int_field,
    provenance,
    read_foreign_config,
    read_safetensors,
)

log = logging.getLogger(__name__)

SPARSIFY_WEIGHTS = "sae.safetensors"
RUN_CONFIG = "config.json"
"""The training run's settings sparsify writes beside its hookpoint folders (`model` among them)."""

_BASE_MODULE = re.compile(r"^layers\.(\d+)(?:\.(mlp|self_attn))?$")
_SHORT = {None: "resid_post", "mlp": "mlp_out", "self_attn": "attn_out"}


def short_hookpoint(module: str) -> str:
    """`layers.6` → `resid_post:6`, `layers.6.mlp` → `mlp_out:6`, `layers.6.self_attn` → `attn_out:6`;
    other names are kept as they are."""
    m = _BASE_MODULE.match(module)
    return f"{_SHORT[m.group(2)]}:{m.group(1)}" if m else module


def run_model(folder: Path) -> str:
    """The `model` of the sparsify run the folder belongs to ("" when its config.json is absent or
    does not say)."""
    path = folder.parent / RUN_CONFIG
    if not path.is_file():
        return ""
    try:
        data: Any = read_json(path)
    except SaescopeError:
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else ""


def transcoder_fields(folder: Path, skip: bool, d_in: int) -> dict[str, Any]:
    """The SAEConfig fields of a sparsify transcoder in `folder` (named after its module,
    `layers.6.mlp`: it reads that module's input and reconstructs its output)."""
    out = short_hookpoint(folder.name)
    return {
        "architecture": "transcoder",
        "hookpoint": f"{folder.name}:input",
        "hookpoint_alias": out.replace("mlp_out:", "mlp_in:") if out.startswith("mlp_out:") else "",
        "d_out": d_in,
        "output_hookpoint": folder.name,
        "output_hookpoint_alias": out if out != folder.name else "",
        "hyperparams": {"transcoder_skip": skip},
    }


def load_sparsify(folder: str | Path) -> SparseAutoencoder:
    """Import an EleutherAI sparsify SAE or transcoder folder (one hookpoint: `cfg.json` +
    `sae.safetensors`)."""
    folder = Path(folder)
    cfg_path, raw = read_foreign_config(folder, "a sparsify")
    transcode, skip = bool(raw.get("transcode")), bool(raw.get("skip_connection"))
    if skip and not transcode:
        raise SaescopeError(f"{cfg_path}: sparsify SAEs with a skip connection are not supported")
    activation = raw.get("activation", "topk")
    if activation != "topk":
        raise SaescopeError(f"{cfg_path}: sparsify activation {activation!r} is not supported (only topk)")
    d_in = int_field(raw, "d_in", cfg_path)
    k = int_field(raw, "k", cfg_path)
    num_latents = raw.get("num_latents") or 0
    d_sae = (
        int_field(raw, "num_latents", cfg_path)
        if num_latents
        else d_in * int_field(raw, "expansion_factor", cfg_path)
    )
    weights_path = folder / SPARSIFY_WEIGHTS
    tensors = read_safetensors(weights_path)
    if "W_skip" in tensors and not skip:
        raise SaescopeError(f"{weights_path}: holds W_skip but its cfg.json has no skip_connection")
    expected = {
        "encoder.weight": (d_sae, d_in),
        "encoder.bias": (d_sae,),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
    }
    if skip:
        expected["W_skip"] = (d_in, d_in)
    kind = "transcoder" if transcode else "SAE"
    check_shapes(tensors, expected, weights_path, f"sparsify {kind} with d_in={d_in}, num_latents={d_sae}")
    dtype = tensors["encoder.weight"].dtype
    # sparsify records no hookpoint in the file: its folder is named after it (`layers.6`).
    fields: dict[str, Any] = {
        "architecture": "topk",
        "hookpoint": folder.name,
        "hookpoint_alias": short_hookpoint(folder.name),
    }
    if transcode:
        fields = transcoder_fields(folder, skip, d_in)
    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        model=run_model(folder),
        dtype=dtype_name(dtype),
        training=provenance("sparsify", folder, config=raw),
        **fields,
    )
    native = {
        "W_enc": tensors["encoder.weight"].double().t(),
        "b_enc": tensors["encoder.bias"].double(),
        "W_dec": tensors["W_dec"].double(),
        "b_dec": tensors["b_dec"].double(),
    }
    if skip:
        native["W_skip"] = tensors["W_skip"].double()
    return assemble(cfg, native, weights_path, dtype)


def save_sparsify(sae: SparseAutoencoder, folder: str | Path) -> Path:
    """Export a TopK `sae` or transcoder as a sparsify folder (`SparseCoder.load_from_disk(folder)`
    reads it)."""
    folder = Path(folder)
    if sae.architecture not in ("topk", "transcoder"):
        raise SaescopeError(f"sparsify holds only TopK SAEs; cannot export a {sae.architecture!r} SAE")
    transcode = sae.architecture == "transcoder"
    if sae.d_out != sae.d_in:
        raise SaescopeError(
            f"sparsify transcoders reconstruct an output as wide as their input; this one maps {sae.d_in} "
            f"→ {sae.d_out}"
        )
    own = sae.file_tensors()
    skip = "W_skip" in own
    norms = sae.W_dec.detach().float().norm(dim=1)
    unit_rows = bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-4))
    cfg = {
        "activation": "topk",
        "expansion_factor": max(sae.d_sae // sae.d_in, 1),
        "normalize_decoder": unit_rows,
        "num_latents": sae.d_sae,
        "k": sae.cfg.k,
        "multi_topk": False,
        "skip_connection": skip,
        "transcode": transcode,
        "d_in": sae.d_in,
    }
    tensors = {
        "encoder.weight": sae.W_enc.detach().t(),
        "encoder.bias": sae.b_enc.detach(),
        "W_dec": sae.W_dec.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    if skip:
        tensors["W_skip"] = own["W_skip"]
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / SPARSIFY_WEIGHTS, tensors, metadata={"format": "pt"})
    write_json(folder / CFG_FILE, cfg, indent=2)
    log.info("exported TopK %s to sparsify format in %s", "transcoder" if transcode else "SAE", folder)
    return folder
