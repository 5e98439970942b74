"""EleutherAI sparsify (1.x): a folder per hookpoint with `cfg.json` + `sae.safetensors` holding
`encoder.weight [M, d_in]`, `encoder.bias [M]`, `W_dec [M, d_in]`, `b_dec [d_in]`; TopK only; import
and export. Transcoders and skip connections are refused.

This module reads and writes files only (sparsify itself is not imported).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...errors import SaescopeError
from ...files import dtype_name, write_json, write_safetensors
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


def load_sparsify(folder: str | Path) -> SparseAutoencoder:
    """Import an EleutherAI sparsify SAE folder (one hookpoint: `cfg.json` + `sae.safetensors`)."""
    folder = Path(folder)
    cfg_path, raw = read_foreign_config(folder, "a sparsify")
    if raw.get("transcode"):
        raise SaescopeError(f"{cfg_path}: sparsify transcoders are not supported (only autoencoders)")
    if raw.get("skip_connection"):
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
        training=provenance("sparsify", folder, config=raw),
    )
    native = {
        "W_enc": tensors["encoder.weight"].double().t(),
        "b_enc": tensors["encoder.bias"].double(),
        "W_dec": tensors["W_dec"].double(),
        "b_dec": tensors["b_dec"].double(),
    }
    return assemble(cfg, native, weights_path, dtype)


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
    write_safetensors(folder / SPARSIFY_WEIGHTS, tensors, metadata={"format": "pt"})
    write_json(folder / CFG_FILE, cfg, indent=2)
    log.info("exported TopK SAE to sparsify format in %s", folder)
    return folder
