"""Transcoders in other libraries' formats: sparsify's `--transcode` folders both ways (exact, skip
path included, checked against sparsify itself); JumpReLU thresholds calibrated for a TopK
transcoder, whose agreement is exact where it can be and measured as poor where it is; circuit-
tracer's set layout and SAELens's JumpReLU transcoder (SAELens itself loads it and computes the
calibrated JumpReLU), both read back as the exact TopK; foreign ReLU/JumpReLU transcoders and what
a format cannot hold are refused in one line."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from safetensors.torch import load_file

from saescope import cli
from saescope.errors import SaescopeError
from saescope.files import read_json, write_json, write_safetensors
from saescope.sae.formats import detect_format, read_sae_folder, save_sae
from saescope.sae.formats.circuit_tracer import save_circuit_tracer
from saescope.sae.formats.jumprelu_thresholds import calibrate_jumprelu
from saescope.sae.formats.saelens_transcoder import save_saelens_transcoder
from saescope.sae.formats.sparsify import load_sparsify, save_sparsify
from saescope.sae.transcoder import Transcoder, TranscoderSet, load_transcoder_set
from tests.steer.builders import random_transcoder

from .builders import random_inputs
from .test_transcoder import make_transcoder


@pytest.mark.parametrize("skip", [False, True])
def test_a_sparsify_transcoder_round_trips_exactly(tmp_path: Path, skip: bool) -> None:
    tc = make_transcoder(d_in=8, d_out=8, skip=skip, layer=3)
    folder = save_sparsify(tc, tmp_path / "layers.3.mlp")
    cfg = read_json(folder / "cfg.json")
    assert cfg["transcode"] is True and cfg["skip_connection"] is skip and detect_format(folder) == "sparsify"
    back, fmt = read_sae_folder(folder)
    assert fmt == "sparsify" and isinstance(back, Transcoder)
    assert (back.cfg.hookpoint_alias, back.cfg.output_hookpoint_alias) == ("mlp_in:3", "mlp_out:3")
    for name, tensor in tc.file_tensors().items():
        assert torch.equal(back.file_tensors()[name], tensor), name
    x = random_inputs(16, 8)
    torch.testing.assert_close(back(x).recon, tc(x).recon, rtol=0, atol=0)


def test_a_sparsify_transcoder_computes_what_sparsify_computes(tmp_path: Path) -> None:
    # sparsify, transcode=True: no b_dec on the input; y = topk(relu(x We^T + be)) Wd + bd + x Ws^T
    gen = torch.Generator().manual_seed(1)
    d, m, k = 6, 20, 3
    tensors = {
        "encoder.weight": torch.randn(m, d, generator=gen),
        "encoder.bias": 0.1 * torch.randn(m, generator=gen),
        "W_dec": torch.randn(m, d, generator=gen),
        "b_dec": torch.randn(d, generator=gen),
        "W_skip": 0.1 * torch.randn(d, d, generator=gen),
    }
    folder = tmp_path / "layers.0.mlp"
    folder.mkdir()
    write_safetensors(folder / "sae.safetensors", tensors)
    cfg = {
        "activation": "topk",
        "num_latents": m,
        "k": k,
        "transcode": True,
        "skip_connection": True,
        "d_in": d,
    }
    write_json(folder / "cfg.json", {**cfg, "expansion_factor": 3, "normalize_decoder": False})
    tc = load_sparsify(folder)
    x = torch.randn(10, d, generator=gen)
    pre = (x @ tensors["encoder.weight"].T + tensors["encoder.bias"]).relu()
    top = pre.topk(k, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    expected = acts @ tensors["W_dec"] + tensors["b_dec"] + x @ tensors["W_skip"].T
    torch.testing.assert_close(tc(x).recon, expected, rtol=1e-5, atol=1e-5)


def test_what_sparsify_cannot_hold_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SaescopeError, match="as wide as their input; this one maps 8 → 6"):
        save_sparsify(make_transcoder(d_in=8, d_out=6), tmp_path / "wide")
    folder = save_sparsify(make_transcoder(d_in=8, d_out=8, skip=True), tmp_path / "layers.1.mlp")
    cfg = read_json(folder / "cfg.json")
    write_json(folder / "cfg.json", {**cfg, "transcode": False})
    assert cli.main(["convert", str(folder), "--to", "native", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "skip connection are not supported" in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def sparsify() -> ModuleType:
    # sparsify's Triton decoder needs CUDA; its eager decoder is the same math.
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    return pytest.importorskip("sparsify")


def test_sparsify_itself_reads_our_transcoder_and_we_read_its_own(
    sparsify: ModuleType, tmp_path: Path
) -> None:
    tc = make_transcoder(d_in=8, d_out=8, d_sae=24, k=3, skip=True, layer=2)
    folder = save_sparsify(tc, tmp_path / "layers.2.mlp")
    coder = sparsify.SparseCoder.load_from_disk(folder)
    assert coder.cfg.transcode and coder.W_skip is not None
    x = random_inputs(32, 8)
    with torch.no_grad():
        theirs = coder(x, torch.zeros(32, 8)).sae_out
        torch.testing.assert_close(theirs, tc(x).recon, rtol=1e-5, atol=1e-5)
        coder.save_to_disk(tmp_path / "theirs" / "layers.2.mlp")
        back = load_sparsify(tmp_path / "theirs" / "layers.2.mlp")
        torch.testing.assert_close(back(x).recon, theirs, rtol=1e-5, atol=1e-5)


def separated_transcoder(d: int = 8, d_sae: int = 16, k: int = 2) -> Transcoder:
    """A transcoder whose latents 2i and 2i+1 fire together on inputs along axis i (and no others):
    TopK with k = 2 and JumpReLU with thresholds between the two levels agree exactly."""
    tc = make_transcoder(d_in=d, d_out=d, d_sae=d_sae, k=k, skip=True)
    enc = torch.zeros(d, d_sae)
    for i in range(d_sae // 2):
        enc[i % d, 2 * i] = enc[i % d, 2 * i + 1] = 1.0
    with torch.no_grad():
        tc.W_enc.copy_(enc)
        tc.b_enc.zero_()
    return tc


def axis_inputs(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = 0.01 * torch.randn(n, d, generator=gen)
    x[torch.arange(n), torch.randint(0, d, (n,), generator=gen)] += 1.0 + torch.rand(n, generator=gen)
    return x


def test_calibrated_thresholds_agree_where_agreement_is_possible_and_say_so_where_not() -> None:
    exact = calibrate_jumprelu(separated_transcoder(), axis_inputs(400))
    assert exact.agreement.identical_share == 1.0 and exact.agreement.relative_difference < 1e-6
    assert exact.agreement.rows == 100 and exact.agreement.topk_l0 == exact.agreement.jumprelu_l0 == 2.0
    assert bool((exact.thresholds >= 0).all())
    random = calibrate_jumprelu(make_transcoder(d_in=8, d_out=8, d_sae=64, k=4), random_inputs(400, 8))
    assert random.agreement.identical_share < 0.9 and random.agreement.relative_difference > 0.01
    assert "held-out rows" in random.agreement.describe()
    with pytest.raises(SaescopeError, match="at least 64 rows"):
        calibrate_jumprelu(separated_transcoder(), axis_inputs(40))


def tiny_set(tmp_path: Path, layers: int = 2) -> TranscoderSet:
    for layer in range(layers):
        tc = make_transcoder(d_in=8, d_out=8, d_sae=24, k=3, skip=layer == 0, layer=layer, seed=layer)
        save_sae(tc, tmp_path / "set" / f"mlp_in_{layer}")
    return load_transcoder_set(tmp_path / "set")


def test_a_circuit_tracer_export_has_its_layout_and_reads_back_exactly(tmp_path: Path) -> None:
    tset = tiny_set(tmp_path)
    samples = {layer: random_inputs(200, 8, seed=layer) for layer in tset.layers}
    export = save_circuit_tracer(tset, tmp_path / "ct", samples)
    assert sorted(export.agreements) == [0, 1] and all(a.rows == 50 for a in export.agreements.values())
    config = yaml.safe_load((tmp_path / "ct" / "config.yaml").read_text())
    assert config["model_kind"] == "transcoder_set" and config["transcoders"] == [
        "layer_0.safetensors",
        "layer_1.safetensors",
    ]
    assert (config["feature_input_hook"], config["feature_output_hook"]) == ("mlp.hook_in", "mlp.hook_out")
    files = load_file(tmp_path / "ct" / "layer_0.safetensors")
    original = tset.at(0)
    assert torch.equal(files["W_enc"], original.W_enc.detach().t())  # circuit-tracer's [d_sae, d_model]
    assert files["activation_function.threshold"].shape == (24,) and "W_skip" in files
    assert "W_skip" not in load_file(tmp_path / "ct" / "layer_1.safetensors")
    back = load_transcoder_set(tmp_path / "ct")
    assert back.layers == (0, 1) and back.model == "tiny"
    for ours, theirs in zip(tset.transcoders, back.transcoders):
        assert theirs.cfg.output_hookpoint_alias == f"mlp_out:{ours.layer}" and theirs.k == ours.k
        for name, tensor in ours.file_tensors().items():
            assert torch.equal(theirs.file_tensors()[name], tensor), name


def test_foreign_circuit_tracer_and_saelens_transcoders_are_refused_in_one_line(tmp_path: Path) -> None:
    tset = tiny_set(tmp_path)
    save_circuit_tracer(tset, tmp_path / "ct", {layer: random_inputs(100, 8) for layer in tset.layers})
    config = yaml.safe_load((tmp_path / "ct" / "config.yaml").read_text())
    del config["saescope"]
    (tmp_path / "ct" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SaescopeError, match="TopK and cannot reproduce them exactly"):
        load_transcoder_set(tmp_path / "ct")
    gappy = TranscoderSet("tiny", None, (1,), (tset.at(1),), tmp_path)
    with pytest.raises(SaescopeError, match="every layer from 0 on"):
        save_circuit_tracer(gappy, tmp_path / "gappy", {1: random_inputs(100, 8)})
    save_saelens_transcoder(tset.at(0), tmp_path / "lens", random_inputs(100, 8))
    cfg = read_json(tmp_path / "lens" / "cfg.json")
    write_json(tmp_path / "lens" / "cfg.json", {k: v for k, v in cfg.items() if k != "saescope_k"})
    with pytest.raises(SaescopeError, match="is a ReLU or JumpReLU transcoder"):
        read_sae_folder(tmp_path / "lens")


def test_saelens_loads_our_transcoder_and_computes_the_calibrated_jumprelu(tmp_path: Path) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    tc = make_transcoder(d_in=8, d_out=8, d_sae=24, k=3, skip=True, layer=2)
    sample = random_inputs(400, 8)
    agreement = save_saelens_transcoder(tc, tmp_path / "lens", sample)
    cfg = read_json(tmp_path / "lens" / "cfg.json")
    assert (
        cfg["architecture"] == "jumprelu_skip_transcoder"
        and cfg["metadata"]["hook_name_out"] == "blocks.2.hook_mlp_out"
    )
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "lens"), device="cpu")
    threshold = load_file(tmp_path / "lens" / "sae_weights.safetensors")["threshold"]
    x = random_inputs(64, 8, seed=5)
    with torch.no_grad():
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * (pre > threshold)
        expected = acts @ tc.W_dec + tc.b_dec + x @ tc.W_skip.T
        torch.testing.assert_close(theirs.encode(x), acts, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(theirs(x), expected, rtol=1e-5, atol=1e-6)
    assert 0 <= agreement.identical_share <= 1 and agreement.rows == 100
    back, fmt = read_sae_folder(tmp_path / "lens")
    assert fmt == "saelens" and isinstance(back, Transcoder) and back.k == 3
    assert back.cfg.hookpoint_alias == "mlp_in:2" and back.cfg.output_hookpoint_alias == "mlp_out:2"
    for name, tensor in tc.file_tensors().items():
        assert torch.equal(back.file_tensors()[name], tensor), name


def test_convert_writes_a_set_for_circuit_tracer_and_prints_the_agreement_of_every_layer(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for layer in range(4):
        save_sae(
            random_transcoder(tiny_model_dir, layer=layer, seed=layer), tmp_path / "set" / f"mlp_in_{layer}"
        )
    argv = ["convert", str(tmp_path / "set"), "--to", "circuit-tracer", "--out", str(tmp_path / "ct")]
    assert cli.main([*argv, "--calibration-tokens", "300"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("held-out rows") == 4 and "identical active set" in printed
    back, original = load_transcoder_set(tmp_path / "ct"), load_transcoder_set(tmp_path / "set")
    for ours, theirs in zip(original.transcoders, back.transcoders):
        assert torch.equal(ours.W_dec, theirs.W_dec) and torch.equal(ours.W_enc, theirs.W_enc)
    one = ["convert", str(tmp_path / "set" / "mlp_in_1"), "--out", str(tmp_path / "lens")]
    assert cli.main([*one, "--to", "saelens", "--calibration-tokens", "300"]) == 0
    assert "layer 1: JumpReLU copy" in capsys.readouterr().out
    assert cli.main([*one[:2], "--to", "circuit-tracer", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no transcoders" in err or "every layer from 0" in err
    assert len(err.splitlines()) == 1
