"""A Hugging Face hub on disk for tests, and tiny SAEs in each published format for the tiny Llama.

`LocalHub.add(repo_id, files)` writes `models--OWNER--REPO/snapshots/<commit>/…` and
`refs/main`: the cache layout `huggingface_hub.snapshot_download` reads offline. The `local_hub`
fixture (imported by a test module as `local_hub_fixture`) points huggingface_hub at a fresh one
(`HF_HUB_CACHE`, `HF_HUB_OFFLINE=1`, and the constants huggingface_hub read when it was imported),
runs the test in a fresh working folder (a published SAE's run folder goes to ./runs) and refuses
every network connection: a test that reached for the network fails.

The writers lay out one SAE each as its library or release does: `saelens_files` (saved by SAELens
itself), `sparsify_files` (saved by sparsify, with the run's `config.json` one folder up),
`gemmascope_files` (`params.npz`), `llamascope_files` (`hyperparams.json` +
`checkpoints/final.safetensors`), with weights that make several latents fire on the tiny model's
residual stream (decoder rows of unit norm, the encoder their transpose scaled).

This module knows nothing about saescope's resolution code; tests build on it.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save

D_IN = 32
"""The tiny Llama's width."""


class LocalHub:
    """A folder laid out as huggingface_hub's cache."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, repo_id: str, files: dict[str, bytes], ref: str = "main") -> str:
        """Store `files` (path in the repository → bytes) as one commit of `repo_id`; returns the commit."""
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(files):
            digest.update(path.encode() + files[path])
        commit = digest.hexdigest()
        repo = self.root / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / commit
        for path, data in files.items():
            (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / path).write_bytes(data)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        return commit


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a test reached for the network: {args[1:] if len(args) > 1 else args}")


@pytest.fixture(name="local_hub")
def local_hub_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """An empty offline hub cache, a fresh working folder, and no network (module docstring)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    for name, value in (
        ("HF_HOME", str(tmp_path / "hf")),
        ("HF_HUB_CACHE", str(cache)),
        ("HF_HUB_OFFLINE", "1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        return _refuse(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    yield LocalHub(cache)


# ----- weights ------------------------------------------------------------------------------------
def unit_rows(d_sae: int, d_in: int = D_IN, seed: int = 0) -> torch.Tensor:
    """`d_sae` random rows of unit norm (float32)."""
    rows = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))
    return rows / rows.norm(dim=1, keepdim=True)


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save({k: v.contiguous() for k, v in tensors.items()})


def folder_files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under `folder` as (path under `prefix` → bytes)."""
    return {
        f"{prefix}{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----- one SAE per format -------------------------------------------------------------------------
def saelens_sae(
    sl: Any, architecture: str, d_sae: int, model: str, hook: str, seed: int = 0, **cfg: Any
) -> Any:
    """An SAELens SAE of `architecture` (topk, jumprelu, standard) that fires on the tiny model."""
    classes = {
        "standard": (sl.StandardSAE, sl.StandardSAEConfig),
        "topk": (sl.TopKSAE, sl.TopKSAEConfig),
        "jumprelu": (sl.JumpReLUSAE, sl.JumpReLUSAEConfig),
    }
    cls, cfg_cls = classes[architecture]
    sae = cls(cfg_cls(d_in=D_IN, d_sae=d_sae, **cfg))
    rows = unit_rows(d_sae, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(6.0 * rows.t())
        sae.b_enc.copy_(0.05 * torch.randn(d_sae, generator=gen))
        sae.b_dec.copy_(0.05 * torch.randn(D_IN, generator=gen))
        if architecture == "jumprelu":
            sae.threshold.copy_(0.3 * torch.rand(d_sae, generator=gen))
    sae.cfg.metadata.model_name = model
    sae.cfg.metadata.hook_name = hook
    return sae


def saelens_files(sae: Any, tmp: Path, prefix: str) -> dict[str, bytes]:
    """An SAELens SAE saved by SAELens, as repository files under `prefix`."""
    sae.save_model(tmp)
    return folder_files(tmp, prefix)


def sparsify_files(
    sparsify: Any, d_sae: int, k: int, model: str, tmp: Path, layer: int = 1
) -> dict[str, bytes]:
    """A sparsify TopK SAE saved by sparsify as `layers.<layer>/`, with the run's config.json."""
    coder = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(num_latents=d_sae, k=k))
    rows = unit_rows(d_sae, seed=3)
    with torch.no_grad():
        coder.W_dec.copy_(rows)
        coder.encoder.weight.copy_(6.0 * rows)
        coder.encoder.bias.copy_(0.05 * torch.randn(d_sae, generator=torch.Generator().manual_seed(4)))
        coder.b_dec.copy_(0.05 * torch.randn(D_IN, generator=torch.Generator().manual_seed(5)))
    coder.save_to_disk(tmp / f"layers.{layer}")
    files = folder_files(tmp / f"layers.{layer}", f"layers.{layer}/")
    files["config.json"] = json.dumps({"model": model, "k": k}).encode()
    return files


def gemmascope_params(d_sae: int, seed: int = 6) -> dict[str, np.ndarray]:
    """Gemma Scope's params.npz arrays: a JumpReLU with per-latent thresholds."""
    rng = np.random.default_rng(seed)
    rows = unit_rows(d_sae, seed=seed).numpy()
    return {
        "W_enc": (6.0 * rows.T).astype(np.float32),
        "W_dec": rows.astype(np.float32),
        "b_enc": (0.05 * rng.standard_normal(d_sae)).astype(np.float32),
        "b_dec": (0.05 * rng.standard_normal(D_IN)).astype(np.float32),
        "threshold": rng.uniform(0.0, 0.4, d_sae).astype(np.float32),
    }


def gemmascope_files(params: dict[str, np.ndarray], prefix: str) -> dict[str, bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    return {f"{prefix}params.npz": buffer.getvalue()}


def llamascope_tensors(
    d_sae: int, seed: int = 7, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Llama Scope's checkpoint tensors: `encoder.weight [d_sae, d_model]`, `decoder.weight
    [d_model, d_sae]` (decoder columns not of unit norm, as lm-saes saves them), biases."""
    gen = torch.Generator().manual_seed(seed)
    rows = unit_rows(d_sae, seed=seed)
    norms = 0.5 + torch.rand(d_sae, generator=gen)
    return {
        "encoder.weight": (2.0 * rows).to(dtype),
        "encoder.bias": (0.05 * torch.randn(d_sae, generator=gen)).to(dtype),
        "decoder.weight": (rows * norms[:, None]).t().contiguous().to(dtype),
        "decoder.bias": (0.05 * torch.randn(D_IN, generator=gen)).to(dtype),
    }


def llamascope_hyperparams(d_sae: int, layer: int = 1, **changes: Any) -> dict[str, Any]:
    """A Llama Scope hyperparams.json for the tiny model (its fields as the releases write them)."""
    hook = f"blocks.{layer}.hook_resid_post"
    return {
        "d_model": D_IN,
        "d_sae": d_sae,
        "hook_point_in": hook,
        "hook_point_out": hook,
        "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False,
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.02,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 3.5, "out": 3.5},
        "sparsity_include_decoder_norm": True,
        "top_k": 8,
        **changes,
    }


def llamascope_files(
    tensors: dict[str, torch.Tensor], hyperparams: dict[str, Any], prefix: str
) -> dict[str, bytes]:
    return {
        f"{prefix}hyperparams.json": json.dumps(hyperparams).encode(),
        f"{prefix}checkpoints/final.safetensors": _tensors_bytes(tensors),
    }


__all__ = [
    "D_IN",
    "LocalHub",
    "folder_files",
    "gemmascope_files",
    "gemmascope_params",
    "llamascope_files",
    "llamascope_hyperparams",
    "llamascope_tensors",
    "local_hub_fixture",
    "saelens_files",
    "saelens_sae",
    "sparsify_files",
    "unit_rows",
]
