"""Conversions reproduce the source library's own encode/decode (each library's own save format).

SAELens and sparsify SAEs are built and saved with the real libraries (random weights), imported
with saescope and compared on random inputs; saescope SAEs are exported and loaded back with the
libraries. Gemma Scope has no library: its tutorial's formula is the oracle. Tests of a library
that is not installed are skipped (`pip install sae-lens eai-sparsify`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from saescope.config import ConvertConfig
from saescope.config import convert as config_convert
from saescope.convert import convert
from saescope.errors import ConfigError, SaescopeError
from saescope.sae import SparseAutoencoder
from saescope.sae.batchtopk import BatchTopKSAE
from saescope.sae.formats import (
    FORMATS_IN,
    FORMATS_OUT,
    READERS,
    WRITERS,
    load_gemmascope,
    load_sae,
    load_saelens,
    load_sparsify,
    save_sae,
    save_saelens,
    save_sparsify,
)
from saescope.sae.formats.saelens import hookpoint_from_transformerlens, hookpoint_to_transformerlens
from saescope.sae.gated import GatedSAE
from saescope.sae.jumprelu import JumpReLUSAE
from saescope.sae.matryoshka import MatryoshkaSAE

from .builders import k_of, make_sae, random_inputs

D_IN, D_SAE = 8, 32


@pytest.fixture(scope="module")
def sl() -> ModuleType:
    return pytest.importorskip("sae_lens")


@pytest.fixture(scope="module")
def sparsify() -> ModuleType:
    # sparsify's Triton decoder needs CUDA; its eager decoder is the same math.
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    return pytest.importorskip("sparsify")


def randomize(module: torch.nn.Module, fills: dict[str, torch.Tensor] | None = None, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    fills = fills or {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(fills[name] if name in fills else 0.3 * torch.randn(p.shape, generator=gen))


def dense(sae: SparseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return sae.encode_dense(x)


def recon(sae: SparseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return sae(x).recon


def compact(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compact form of a dense latent matrix (all latents; zeros where inactive)."""
    idx = torch.arange(acts.shape[1]).expand_as(acts).contiguous()
    return acts, idx


def assert_same_as_saelens(ours: SparseAutoencoder, theirs: Any, x: torch.Tensor) -> None:
    with torch.no_grad():
        their_acts = theirs.encode(x)
        their_recon = theirs.decode(their_acts)
        assert int((their_acts > 0).sum()) > 0, "the test needs some active latents"
        torch.testing.assert_close(dense(ours, x), their_acts, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(recon(ours, x), their_recon, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.decode(*compact(their_acts)), their_recon, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(recon(ours, x), theirs(x), rtol=1e-5, atol=1e-5)


# ----- SAELens ----------------------------------------------------------------------------------
def saelens_sae(sl: ModuleType, architecture: str, **cfg: Any) -> Any:
    classes = {
        "standard": (sl.StandardSAE, sl.StandardSAEConfig),
        "topk": (sl.TopKSAE, sl.TopKSAEConfig),
        "jumprelu": (sl.JumpReLUSAE, sl.JumpReLUSAEConfig),
        "gated": (sl.GatedSAE, sl.GatedSAEConfig),
        "abstopk": (sl.AbsTopKSAE, sl.AbsTopKSAEConfig),
    }
    cls, cfg_cls = classes[architecture]
    sae = cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, **cfg))
    fills = {}
    if architecture == "jumprelu":
        gen = torch.Generator().manual_seed(9)
        threshold = 0.4 * torch.rand(D_SAE, generator=gen)
        threshold[:3] = torch.tensor([-0.2, 0.0, -1.0])  # ReLU(z)·H(z − θ) for θ < 0 is a ReLU
        fills["threshold"] = threshold
    randomize(sae, fills)
    sae.cfg.metadata.model_name = "gpt2-small"
    sae.cfg.metadata.hook_name = "blocks.3.hook_resid_post"
    return sae


@pytest.mark.parametrize(
    ("architecture", "cfg", "ours"),
    [
        ("standard", {}, "relu"),
        ("standard", {"apply_b_dec_to_input": False}, "relu"),
        ("topk", {"k": 4}, "topk"),
        ("topk", {"k": 4, "rescale_acts_by_decoder_norm": True}, "topk"),
        ("jumprelu", {}, "jumprelu"),
        ("jumprelu", {"apply_b_dec_to_input": False}, "jumprelu"),
        ("gated", {}, "gated"),
        ("gated", {"apply_b_dec_to_input": False}, "gated"),
    ],
)
def test_saelens_import_reproduces_saelens(
    sl: ModuleType, tmp_path: Path, architecture: str, cfg: dict[str, Any], ours: str
) -> None:
    theirs = saelens_sae(sl, architecture, **cfg)
    theirs.save_model(tmp_path / "sl")
    sae = load_saelens(tmp_path / "sl")
    assert sae.architecture == ours
    assert (sae.cfg.model, sae.cfg.hookpoint) == ("gpt2-small", "resid_post:3")
    assert sae.cfg.training.source["format"] == "saelens"
    assert_same_as_saelens(sae, theirs, random_inputs(64, D_IN))


def test_saelens_batchtopk_training_checkpoint_imports_in_both_modes(sl: ModuleType, tmp_path: Path) -> None:
    theirs = sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=4))
    assert theirs.cfg.rescale_acts_by_decoder_norm  # SAELens's default: exercises the norm folding
    randomize(theirs)
    theirs.topk_threshold = torch.tensor(0.35, dtype=torch.double)
    theirs.save_model(tmp_path / "train")
    sae = load_saelens(tmp_path / "train")
    assert sae.architecture == "batchtopk" and sae.cfg.k == 4
    x = random_inputs(32, D_IN)
    sae.train()  # SAELens's training SAE encodes with the batch top-k
    torch.testing.assert_close(dense(sae, x), theirs.encode(x).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recon(sae, x), theirs(x).detach(), rtol=1e-5, atol=1e-5)
    sae.eval()  # ... and saves for inference as a JumpReLU with the learned threshold
    theirs.save_inference_model(tmp_path / "inference")
    inference = sl.SAE.load_from_disk(tmp_path / "inference")
    assert inference.cfg.architecture() == "jumprelu"
    assert_same_as_saelens(sae, inference, x)


def test_saelens_matryoshka_training_checkpoint_imports_with_its_groups_and_losses(
    sl: ModuleType, tmp_path: Path
) -> None:
    """A Matryoshka BatchTopK training checkpoint of SAELens: its widths become the groups, its batch
    top-k codes and every prefix's reconstruction error (SAELens's `inner_mse_loss_W`, and the
    full `mse_loss`) are ours on the same inputs, and its inference model (a JumpReLU) is ours in
    eval mode."""
    cfg = sl.MatryoshkaBatchTopKTrainingSAEConfig(
        d_in=D_IN, d_sae=D_SAE, k=4, matryoshka_widths=[4, 12, D_SAE]
    )
    theirs = sl.MatryoshkaBatchTopKTrainingSAE(cfg)
    assert theirs.cfg.rescale_acts_by_decoder_norm  # exercises the norm folding
    randomize(theirs)
    theirs.topk_threshold = torch.tensor(0.35, dtype=torch.double)
    theirs.save_model(tmp_path / "train")
    theirs.save_inference_model(tmp_path / "inference")  # before a training step moves its threshold
    sae = load_saelens(tmp_path / "train")
    assert isinstance(sae, MatryoshkaSAE) and sae.cfg.k == 4
    assert sae.prefix_widths == (4, 12, D_SAE) and sae.params.batchtopk_threshold_momentum == 0.01
    x = random_inputs(32, D_IN)
    sae.train()
    with torch.no_grad():
        out = sae(x)
        step = sl.saes.sae.TrainStepInput(x, {}, None, n_training_steps=0, is_logging_step=False)
        losses = theirs.training_forward_pass(step).losses
        torch.testing.assert_close(sae.encode_dense(x), theirs.encode(x), rtol=1e-5, atol=1e-5)
        ours = sae.prefix_losses(x, out)
    torch.testing.assert_close(ours, torch.stack([losses["inner_mse_loss_4"], losses["inner_mse_loss_12"]]))
    torch.testing.assert_close((x - out.recon).pow(2).sum(-1).mean(), losses["mse_loss"])
    sae.eval()
    inference = sl.SAE.load_from_disk(tmp_path / "inference")
    assert inference.cfg.architecture() == "jumprelu"
    assert_same_as_saelens(sae, inference, x)


def test_saelens_gated_training_losses_are_ours(sl: ModuleType, tmp_path: Path) -> None:
    """SAELens's gated training SAE, saved and imported: the same gate L1 and auxiliary
    reconstruction (SAELens does not freeze the decoder there, which changes gradients, not values)."""
    theirs = sl.GatedTrainingSAE(sl.GatedTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coefficient=0.7))
    randomize(theirs)
    theirs.save_model(tmp_path / "train")
    sae = load_saelens(tmp_path / "train")
    assert isinstance(sae, GatedSAE)
    with torch.no_grad():
        sae.cfg = sae.cfg.with_updates(hyperparams={"gate_l1_coefficient": 0.7})
        sae.params = GatedSAE.Params(gate_l1_coefficient=0.7)
        x = random_inputs(32, D_IN)
        out = sae(x)
        own = sae.architecture_loss(x, out.pre_acts.gather(-1, out.latent_indices), out)
        step = sl.saes.sae.TrainStepInput(x, {"l1": 0.7}, None, n_training_steps=0, is_logging_step=False)
        losses = theirs.training_forward_pass(step).losses
    torch.testing.assert_close(own.sparsity_loss, losses["l1_loss"])
    torch.testing.assert_close(own.extra_loss, losses["auxiliary_reconstruction_loss"])
    torch.testing.assert_close((x - out.recon).pow(2).sum(-1).mean(), losses["mse_loss"])


@pytest.mark.parametrize("architecture", ["relu", "topk", "jumprelu", "batchtopk", "matryoshka", "gated"])
def test_saelens_export_loads_in_saelens_with_the_same_outputs(
    sl: ModuleType, tmp_path: Path, architecture: str
) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    if isinstance(sae, JumpReLUSAE):
        with torch.no_grad():
            sae.log_threshold.copy_((0.05 + 0.3 * torch.rand(sae.d_sae)).log())
    if isinstance(sae, BatchTopKSAE):
        with torch.no_grad():
            sae.threshold.fill_(0.25)
    if isinstance(sae, GatedSAE):
        with torch.no_grad():
            sae.r_mag.copy_(0.5 * torch.randn(sae.d_sae))
            sae.b_mag.copy_(0.2 * torch.randn(sae.d_sae))
    sae.eval()
    save_saelens(sae, tmp_path / "out")
    theirs = sl.SAE.load_from_disk(tmp_path / "out")
    # BatchTopK and Matryoshka as JumpReLU, as SAELens saves them for inference
    expected = {"relu": "standard", "topk": "topk", "gated": "gated"}.get(architecture, "jumprelu")
    assert theirs.cfg.architecture() == expected
    assert theirs.cfg.metadata.model_name == "tiny"
    assert theirs.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    assert_same_as_saelens(sae, theirs, random_inputs(64, D_IN))
    # And back: the same SAE again.
    again = load_saelens(tmp_path / "out")
    assert again.cfg.hookpoint == "resid_post:1"
    torch.testing.assert_close(recon(again, random_inputs(8, D_IN)), recon(sae, random_inputs(8, D_IN)))


@pytest.mark.parametrize(
    ("architecture", "cfg", "match"),
    [
        ("standard", {"normalize_activations": "layer_norm"}, "layer_norm"),
        ("standard", {"normalize_activations": "expected_average_only_in"}, "scaling factor"),
        ("abstopk", {"k": 4}, "architecture 'abstopk' is not supported"),
    ],
)
def test_saelens_settings_that_cannot_be_folded_are_refused(
    sl: ModuleType, tmp_path: Path, architecture: str, cfg: dict[str, Any], match: str
) -> None:
    saelens_sae(sl, architecture, **cfg).save_model(tmp_path / "sl")
    with pytest.raises(SaescopeError, match=match):
        load_saelens(tmp_path / "sl")


def test_saelens_shape_mismatch_is_refused(sl: ModuleType, tmp_path: Path) -> None:
    saelens_sae(sl, "standard").save_model(tmp_path / "sl")
    cfg = json.loads((tmp_path / "sl" / "cfg.json").read_text())
    cfg["d_sae"] = 64
    (tmp_path / "sl" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SaescopeError, match="W_enc has shape"):
        load_saelens(tmp_path / "sl")


# ----- sparsify ---------------------------------------------------------------------------------
def sparsify_coder(sparsify: ModuleType, **cfg: Any) -> Any:
    coder = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(**{"num_latents": D_SAE, "k": 4, **cfg}))
    randomize(coder)
    return coder


def test_sparsify_import_reproduces_sparsify(sparsify: ModuleType, tmp_path: Path) -> None:
    coder = sparsify_coder(sparsify)
    coder.save_to_disk(tmp_path / "layers.3")
    sae = load_sparsify(tmp_path / "layers.3")
    assert sae.architecture == "topk" and sae.cfg.k == 4 and sae.cfg.hookpoint == "layers.3"
    x = random_inputs(64, D_IN)
    with torch.no_grad():
        top_acts, top_indices, _ = coder.encode(x)
        their_dense = torch.zeros(64, D_SAE).scatter(-1, top_indices, top_acts)
        their_recon = coder.decode(top_acts, top_indices)
    torch.testing.assert_close(dense(sae, x), their_dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recon(sae, x), their_recon, rtol=1e-5, atol=1e-5)


def test_sparsify_export_loads_in_sparsify_with_the_same_outputs(
    sparsify: ModuleType, tmp_path: Path
) -> None:
    sae = make_sae("topk", k=4)
    save_sparsify(sae, tmp_path / "layers.1")
    coder = sparsify.SparseCoder.load_from_disk(tmp_path / "layers.1")
    assert coder.cfg.k == 4 and coder.num_latents == D_SAE
    x = random_inputs(64, D_IN)
    with torch.no_grad():
        top_acts, top_indices, _ = coder.encode(x)
        torch.testing.assert_close(
            torch.zeros(64, D_SAE).scatter(-1, top_indices, top_acts), dense(sae, x), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(coder.decode(top_acts, top_indices), recon(sae, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"skip_connection": True}, "skip connection"),
        ({"activation": "groupmax"}, "activation 'groupmax'"),
    ],
)
def test_sparsify_variants_that_are_not_plain_topk_saes_are_refused(
    sparsify: ModuleType, tmp_path: Path, cfg: dict[str, Any], match: str
) -> None:
    sparsify_coder(sparsify, **cfg).save_to_disk(tmp_path / "layers.0")
    with pytest.raises(SaescopeError, match=match):
        load_sparsify(tmp_path / "layers.0")


def test_only_topk_exports_to_sparsify(tmp_path: Path) -> None:
    with pytest.raises(SaescopeError, match="only TopK"):
        save_sparsify(make_sae("relu", k=None), tmp_path / "x")


# ----- Gemma Scope ------------------------------------------------------------------------------
def gemmascope_params(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    threshold = rng.uniform(0.0, 0.5, D_SAE).astype(np.float32)
    threshold[:2] = [-0.3, 0.0]
    return {
        "W_enc": (0.4 * rng.standard_normal((D_IN, D_SAE))).astype(np.float32),
        "W_dec": (0.4 * rng.standard_normal((D_SAE, D_IN))).astype(np.float32),
        "b_enc": (0.2 * rng.standard_normal(D_SAE)).astype(np.float32),
        "b_dec": (0.5 * rng.standard_normal(D_IN)).astype(np.float32),
        "threshold": threshold,
    }


def gemmascope_tutorial(params: dict[str, Any], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gemma Scope tutorial's JumpReLUSAE.encode/decode."""
    p = {k: torch.from_numpy(v) for k, v in params.items()}
    pre_acts = x @ p["W_enc"] + p["b_enc"]
    mask = pre_acts > p["threshold"]
    acts = mask * torch.nn.functional.relu(pre_acts)
    return acts, acts @ p["W_dec"] + p["b_dec"]


@pytest.mark.parametrize("as_folder", [False, True])
def test_gemmascope_import_reproduces_the_tutorial_formula(tmp_path: Path, as_folder: bool) -> None:
    params = gemmascope_params()
    np.savez(tmp_path / "params.npz", **params)
    sae = load_gemmascope(tmp_path if as_folder else tmp_path / "params.npz")
    assert sae.architecture == "jumprelu" and (sae.d_in, sae.d_sae) == (D_IN, D_SAE)
    x = random_inputs(128, D_IN, seed=3) * 2
    acts, expected = gemmascope_tutorial(params, x)
    assert int((acts > 0).sum()) > 0
    torch.testing.assert_close(dense(sae, x), acts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recon(sae, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("damage", "match"),
    [("no_threshold", "no tensor 'threshold'"), ("bad_shape", "b_enc has shape"), ("not_zip", "cannot read")],
)
def test_gemmascope_bad_files_are_refused(tmp_path: Path, damage: str, match: str) -> None:
    params = gemmascope_params()
    path = tmp_path / "params.npz"
    if damage == "no_threshold":
        del params["threshold"]
    if damage == "bad_shape":
        params["b_enc"] = params["b_enc"][:-1]
    np.savez(path, **params)
    if damage == "not_zip":
        path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(SaescopeError, match=match):
        load_gemmascope(path)
    with pytest.raises(SaescopeError, match="not found"):
        load_gemmascope(tmp_path / "missing.npz")


# ----- the stage --------------------------------------------------------------------------------
def test_formats_offered_to_the_cli() -> None:
    assert FORMATS_IN == ("native", "saelens", "sparsify", "gemmascope", "llamascope")
    assert FORMATS_OUT == ("native", "saelens", "sparsify", "circuit-tracer")


def test_the_formats_implemented_are_the_ones_the_config_declares() -> None:
    """`convert --from/--to` offer `saescope.config.convert`'s names (known without torch); the
    formats package reads and writes exactly those."""
    assert list(READERS) == list(config_convert.FORMATS_IN) and FORMATS_IN is config_convert.FORMATS_IN
    assert list(WRITERS) == list(config_convert.FORMATS_OUT) and FORMATS_OUT is config_convert.FORMATS_OUT


def test_the_convert_config_refuses_unknown_formats_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown source format 'pickle' \(--from\)"):
        ConvertConfig(sae_dir=tmp_path, from_format="pickle", out=tmp_path / "o")
    with pytest.raises(ConfigError, match=r"unknown target format 'gemmascope' \(--to\)"):
        ConvertConfig(sae_dir=tmp_path, to_format="gemmascope", out=tmp_path / "o")
    with pytest.raises(ConfigError, match="give --out"):
        ConvertConfig(sae_dir=tmp_path)
    with pytest.raises(ConfigError, match="SAE_DIR"):
        ConvertConfig(out=tmp_path / "o")


def test_hookpoint_names_translate_both_ways() -> None:
    assert hookpoint_from_transformerlens("blocks.12.hook_resid_post") == "resid_post:12"
    assert hookpoint_from_transformerlens("blocks.0.attn.hook_z") == "blocks.0.attn.hook_z"
    assert hookpoint_to_transformerlens("mlp_out:4") == "blocks.4.hook_mlp_out"
    assert hookpoint_to_transformerlens("model.layers.15") == "blocks.15.hook_resid_post"
    assert hookpoint_to_transformerlens("model.norm") == "model.norm"


def test_convert_gemmascope_to_native_records_model_and_hookpoint(tmp_path: Path) -> None:
    params = gemmascope_params()
    np.savez(tmp_path / "params.npz", **params)
    cfg = ConvertConfig(
        sae_dir=tmp_path / "params.npz",
        from_format="gemmascope",
        to_format="native",
        out=tmp_path / "native",
        model="google/gemma-2-2b",
        hookpoint="resid_post:20",
    )
    assert convert(cfg).out == tmp_path / "native"
    sae = load_sae(tmp_path / "native")
    assert (sae.cfg.model, sae.cfg.hookpoint, sae.cfg.hookpoint_alias) == (
        "google/gemma-2-2b",
        "resid_post:20",
        "resid_post:20",
    )
    x = random_inputs(32, D_IN)
    torch.testing.assert_close(recon(sae, x), gemmascope_tutorial(params, x)[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["relu", "topk", "jumprelu", "batchtopk", "matryoshka", "gated"])
def test_convert_native_to_saelens_and_back_is_exact(tmp_path: Path, architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    if isinstance(sae, BatchTopKSAE):
        with torch.no_grad():
            sae.threshold.fill_(0.2)
    save_sae(sae, tmp_path / "a")
    convert(
        ConvertConfig(sae_dir=tmp_path / "a", from_format="native", to_format="saelens", out=tmp_path / "b")
    )
    convert(
        ConvertConfig(sae_dir=tmp_path / "b", from_format="saelens", to_format="native", out=tmp_path / "c")
    )
    back = load_sae(tmp_path / "c")
    assert (back.cfg.model, back.cfg.hookpoint) == ("tiny", "resid_post:1")
    sae.eval()
    x = random_inputs(32, D_IN)
    assert torch.equal(dense(back, x), dense(sae, x))
    assert torch.equal(recon(back, x), recon(sae, x))


def test_convert_native_to_sparsify_and_back_with_hookpoint_override(tmp_path: Path) -> None:
    sae = make_sae("topk", k=3)
    save_sae(sae, tmp_path / "a")
    convert(
        ConvertConfig(
            sae_dir=tmp_path / "a", from_format="native", to_format="sparsify", out=tmp_path / "layers.1"
        )
    )
    convert(
        ConvertConfig(
            sae_dir=tmp_path / "layers.1",
            from_format="sparsify",
            to_format="native",
            out=tmp_path / "c",
            model="tiny",
            hookpoint="model.layers.1",
        )
    )
    back = load_sae(tmp_path / "c")
    assert (back.cfg.model, back.cfg.hookpoint, back.cfg.k) == ("tiny", "model.layers.1", 3)
    x = random_inputs(16, D_IN)
    assert torch.equal(recon(back, x), recon(sae, x))


def test_convert_refuses_to_overwrite_the_source_or_another_format(tmp_path: Path) -> None:
    save_sae(make_sae("topk"), tmp_path / "a")
    save_sae(make_sae("topk"), tmp_path / "other")
    with pytest.raises(ConfigError, match="source folder"):
        convert(
            ConvertConfig(
                sae_dir=tmp_path / "a", from_format="native", to_format="saelens", out=tmp_path / "a"
            )
        )
    with pytest.raises(ConfigError, match="already holds a native SAE"):
        convert(
            ConvertConfig(
                sae_dir=tmp_path / "a", from_format="native", to_format="saelens", out=tmp_path / "other"
            )
        )
    assert load_sae(tmp_path / "other").architecture == "topk"
    # Converting again into a folder of the target format replaces it.
    convert(
        ConvertConfig(
            sae_dir=tmp_path / "a", from_format="native", to_format="native", out=tmp_path / "other"
        )
    )


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"from_format": "pickle"}, ConfigError, "unknown source format"),
        ({"to_format": "gemmascope"}, ConfigError, "unknown target format"),
        ({"sae_dir": Path("/nonexistent/sae")}, SaescopeError, "not found"),
        ({"from_format": "saelens"}, SaescopeError, "native saescope SAE"),
        ({"from_format": "sparsify"}, SaescopeError, "native saescope SAE"),
    ],
)
def test_convert_bad_requests(tmp_path: Path, change: dict[str, Any], error: type, match: str) -> None:
    save_sae(make_sae("topk"), tmp_path / "a")
    base = {"sae_dir": tmp_path / "a", "from_format": "native", "to_format": "native", "out": tmp_path / "b"}
    with pytest.raises(error, match=match):
        convert(ConvertConfig(**{**base, **change}))
