"""Published SAEs by name give the latents and reconstructions of each format's own maths.

Each SAE sits in a local hub (`tests.local_hub`: huggingface_hub's cache layout, offline, no
network) as its library or release lays it out, for the tiny Llama's width. The references:
SAELens itself loads the SAELens folders; sparsify itself the sparsify folders (SAELens 6.54's
sparsify loader cannot load the files sparsify writes: it transposes W_dec wrongly); Llama Scope
and Gemma Scope are computed here from their definitions (the Llama Scope paper and lm-saes's
encoder, with SAELens's rescaling of the JumpReLU threshold; the Gemma Scope tutorial's
JumpReLU).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from saescope.errors import SaescopeError
from saescope.sae import SparseAutoencoder, catalog
from saescope.sae.source import read_published
from tests.local_hub import (
    D_IN,
    LocalHub,
    gemmascope_files,
    gemmascope_params,
    llamascope_files,
    llamascope_hyperparams,
    llamascope_tensors,
    local_hub_fixture,  # noqa: F401  (the local_hub fixture)
    saelens_files,
    saelens_sae,
    sparsify_files,
)

D_SAE = 64
MODEL = "tiny-org/tiny-llama"


@pytest.fixture(scope="module")
def sl() -> ModuleType:
    return pytest.importorskip("sae_lens")


@pytest.fixture(scope="module")
def sparsify() -> ModuleType:
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")  # its Triton decoder needs CUDA
    return pytest.importorskip("sparsify")


def inputs(n: int = 96, scale: float = 0.6, seed: int = 2) -> torch.Tensor:
    return scale * torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed))


def ours(sae: SparseAutoencoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return sae.encode_dense(x).double(), sae(x).recon.double()


def assert_agree(sae: SparseAutoencoder, x: torch.Tensor, acts: torch.Tensor, recon: torch.Tensor) -> None:
    mine_acts, mine_recon = ours(sae, x)
    assert int((acts > 0).sum()) > len(x), "the test needs several active latents per row"
    torch.testing.assert_close(mine_acts, acts.double(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mine_recon, recon.double(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("architecture", "cfg"),
    [("topk", {"k": 6}), ("jumprelu", {}), ("standard", {"apply_b_dec_to_input": False})],
)
def test_saelens_by_name_agrees_with_saelens(
    sl: ModuleType, local_hub: LocalHub, tmp_path: Path, architecture: str, cfg: dict[str, Any]
) -> None:
    theirs = saelens_sae(sl, architecture, D_SAE, MODEL, "blocks.1.hook_resid_post", **cfg)
    local_hub.add("someone/tiny-saes", saelens_files(theirs, tmp_path / "sl", "blocks.1.hook_resid_post/"))
    sae, resolved, fmt = read_published("hf:someone/tiny-saes/blocks.1.hook_resid_post")
    assert fmt == "saelens" and (sae.cfg.model, sae.cfg.hookpoint) == (MODEL, "resid_post:1")
    reference = sl.SAE.load_from_disk(resolved.folder)  # SAELens reads the very files in the cache
    x = inputs()
    with torch.no_grad():
        acts = reference.encode(x)
        assert_agree(sae, x, acts, reference.decode(acts))


def test_sparsify_by_name_agrees_with_sparsify(
    sparsify: ModuleType, local_hub: LocalHub, tmp_path: Path
) -> None:
    local_hub.add("EleutherAI/tiny-sae-32x", sparsify_files(sparsify, D_SAE, 6, MODEL, tmp_path / "sp"))
    sae, resolved, fmt = read_published("hf:EleutherAI/tiny-sae-32x/layers.1")
    # the model from the run's config.json; the base model's module translated to a site
    assert fmt == "sparsify" and (sae.cfg.model, sae.cfg.hookpoint_alias) == (MODEL, "resid_post:1")
    reference = sparsify.SparseCoder.load_from_disk(resolved.folder)
    x = inputs()
    with torch.no_grad():
        top_acts, top_indices, _ = reference.encode(x)
        acts = torch.zeros(len(x), D_SAE).scatter(-1, top_indices, top_acts)
        assert_agree(sae, x, acts, reference.decode(top_acts, top_indices))


def gemmascope_reference(params: dict[str, np.ndarray], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gemma Scope's JumpReLU (its tutorial): relu(pre)·1[pre > θ], pre = x @ W_enc + b_enc."""
    p = {k: torch.from_numpy(v).double() for k, v in params.items()}
    pre = x.double() @ p["W_enc"] + p["b_enc"]
    acts = torch.relu(pre) * (pre > p["threshold"])
    return acts, acts @ p["W_dec"] + p["b_dec"]


def test_gemmascope_by_name_agrees_with_its_definition_and_names_its_site(local_hub: LocalHub) -> None:
    params = gemmascope_params(D_SAE)
    local_hub.add("google/gemma-scope-2b-pt-res", gemmascope_files(params, "layer_1/width_16k/average_l0_5/"))
    sae, _, fmt = read_published("hf:google/gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_5")
    assert fmt == "gemmascope" and sae.architecture == "jumprelu"
    # params.npz records neither: the repository's name and folder say them
    assert (sae.cfg.model, sae.cfg.hookpoint) == ("google/gemma-2-2b", "resid_post:1")
    x = inputs()
    assert_agree(sae, x, *gemmascope_reference(params, x))


def llamascope_reference(
    t: dict[str, torch.Tensor], hp: dict[str, Any], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama Scope's SAE as its paper and lm-saes define it: inputs rescaled to norm √d_model on
    average, the JumpReLU gate on h·‖decoder column‖ against the threshold rescaled by
    √d_model / E‖x‖, the reconstruction scaled back."""
    t = {k: v.double() for k, v in t.items()}
    d = hp["d_model"]
    s_in = math.sqrt(d) / hp["dataset_average_activation_norm"]["in"]
    s_out = math.sqrt(d) / hp["dataset_average_activation_norm"]["out"]
    xn = x.double() * s_in
    if hp["apply_decoder_bias_to_pre_encoder"]:
        xn = xn - t["decoder.bias"]
    h = xn @ t["encoder.weight"].T + t["encoder.bias"]
    norms = t["decoder.weight"].norm(dim=0) if hp["sparsity_include_decoder_norm"] else torch.ones(h.shape[1])
    z = h * ((h * norms) > hp["jump_relu_threshold"] * s_in)
    return z, (z @ t["decoder.weight"].T + t["decoder.bias"]) / s_out


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"sparsity_include_decoder_norm": False, "apply_decoder_bias_to_pre_encoder": True},
        {"dataset_average_activation_norm": {"in": 2.5, "out": 4.0}},
    ],
)
def test_llamascope_by_registry_name_agrees_with_its_definition(
    local_hub: LocalHub, changes: dict[str, Any]
) -> None:
    tensors, hp = llamascope_tensors(D_SAE), llamascope_hyperparams(D_SAE, **changes)
    repo, folder = "fnlp/Llama3_1-8B-Base-LXR-8x", "Llama3_1-8B-Base-L1R-8x"
    local_hub.add(repo, llamascope_files(tensors, hp, f"{folder}/"))
    sae, resolved, fmt = read_published("saelens:llama_scope_lxr_8x/l1r_8x")
    assert fmt == "llamascope" and resolved.pinned.startswith(f"hf:{repo}/{folder}@")
    # hooks translated; the model is the registry release's (the hyperparameters name none)
    assert (sae.cfg.model, sae.cfg.hookpoint) == ("meta-llama/Llama-3.1-8B", "resid_post:1")
    x = inputs()
    assert_agree(sae, x, *llamascope_reference(tensors, hp, x))


def test_llamascope_in_bf16_keeps_its_dtype(local_hub: LocalHub) -> None:
    tensors, hp = llamascope_tensors(D_SAE, dtype=torch.bfloat16), llamascope_hyperparams(D_SAE)
    local_hub.add("fnlp/Llama3_1-8B-Base-LXR-8x", llamascope_files(tensors, hp, "Llama3_1-8B-Base-L1R-8x/"))
    sae, _, _ = read_published("hf:fnlp/Llama3_1-8B-Base-LXR-8x/Llama3_1-8B-Base-L1R-8x")
    assert sae.W_enc.dtype == torch.bfloat16 and sae.cfg.dtype == "bfloat16"
    x = inputs()
    _, recon = llamascope_reference(tensors, hp, x)
    with torch.no_grad():
        mine = sae(x.to(torch.bfloat16)).recon.double()
    assert float((mine - recon).norm() / recon.norm()) < 0.05  # bf16 weights, folded once


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"hook_point_out": "blocks.1.hook_mlp_out"}, "transcoder"),
        ({"norm_activation": "token-wise"}, "cannot be folded"),
        ({"act_fn": "topk"}, "act_fn 'topk'"),
        ({"dataset_average_activation_norm": {"in": 0}}, "must be a positive number"),
    ],
)
def test_llamascope_settings_it_cannot_reproduce_are_refused(
    local_hub: LocalHub, changes: dict[str, Any], match: str
) -> None:
    hp = llamascope_hyperparams(D_SAE, **changes)
    local_hub.add("fnlp/x", llamascope_files(llamascope_tensors(D_SAE), hp, "L1R/"))
    with pytest.raises(SaescopeError, match=match):
        read_published("hf:fnlp/x/L1R")


def test_saelens_normalised_input_takes_the_registrys_scaling_factor(
    sl: ModuleType, local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`normalize_activations: expected_average_only_in` with the factor SAELens's registry records
    for the SAE, folded in as SAELens's `from_pretrained` does; without it, refused."""
    theirs = saelens_sae(
        sl,
        "topk",
        D_SAE,
        MODEL,
        "blocks.1.hook_resid_post",
        k=6,
        normalize_activations="expected_average_only_in",
    )
    local_hub.add("someone/normalised", saelens_files(theirs, tmp_path / "sl", "blocks.1.hook_resid_post/"))
    registry = (
        "tiny-release:\n  conversion_func: null\n  model: tiny-org/tiny-llama\n"
        "  repo_id: someone/normalised\n"
        "  saes:\n  - id: res-1\n    path: blocks.1.hook_resid_post\n    norm_scaling_factor: 2.5\n"
    )
    monkeypatch.setattr(catalog, "_installed", lambda: (registry, "sae-lens (test registry)"))
    sae, resolved, _ = read_published("saelens:tiny-release/res-1")
    reference = sl.SAE.load_from_disk(resolved.folder)
    reference.fold_activation_norm_scaling_factor(2.5)
    x = inputs()
    with torch.no_grad():
        acts = reference.encode(x)
        assert_agree(sae, x, acts, reference.decode(acts))
    # the same folder by its hub name: the registry lists it, so the same factor
    by_hub, _, _ = read_published("hf:someone/normalised/blocks.1.hook_resid_post")
    assert by_hub.cfg.training.source["registry"]["sae_id"] == "res-1"
    assert_agree(by_hub, x, acts, reference.decode(acts))
    local_hub.add("someone/elsewhere", saelens_files(theirs, tmp_path / "sl2", "blocks.1.hook_resid_post/"))
    with pytest.raises(SaescopeError, match="expected_average_only_in"):
        read_published("hf:someone/elsewhere/blocks.1.hook_resid_post")  # no registry entry: no factor
