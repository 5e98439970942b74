"""Transcoder: outputs by hand, the naive dense formula in values and gradients on every kernel,
the skip path, native files, folding scales, transcoder sets and bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saescope.errors import ConfigError, SaescopeError
from saescope.sae import SAEConfig
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.init import fold_input_scale, initialize
from saescope.sae.transcoder import Transcoder, layer_of_hookpoint, load_transcoder_set, mlp_transcoder_config

from .builders import make_sae, random_inputs


def make_transcoder(
    d_in: int = 8,
    d_out: int = 6,
    d_sae: int = 32,
    k: int = 4,
    skip: bool = False,
    layer: int = 1,
    seed: int = 0,
) -> Transcoder:
    """A float32 transcoder with random weights in every tensor (b_dec, b_enc and W_skip included)."""
    cfg = mlp_transcoder_config(layer, d_in, d_sae, k, "tiny", skip, d_out=d_out)
    tc = Transcoder(cfg)
    gen = torch.Generator().manual_seed(seed)
    initialize(tc, generator=gen, b_dec=0.1 * torch.randn(d_out, generator=gen))
    with torch.no_grad():
        tc.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen))
        if tc.W_skip is not None:
            tc.W_skip.copy_(0.1 * torch.randn(d_out, d_in, generator=gen))
    return tc


def naive(tc: Transcoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook formula, dense: a = topk_k(relu(x @ W_enc + b_enc)),
    y = a @ W_dec + b_dec + x @ W_skip.T."""
    pre = (x @ tc.W_enc + tc.b_enc).relu()
    top = pre.topk(tc.k, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    recon = acts @ tc.W_dec + tc.b_dec
    if tc.W_skip is not None:
        recon = recon + x @ tc.W_skip.T
    return acts, recon


def test_hand_set_weights_give_hand_computed_outputs() -> None:
    cfg = SAEConfig(
        architecture="transcoder", d_in=2, d_sae=3, k=1, d_out=3, hyperparams={"transcoder_skip": True}
    )
    tc = Transcoder(cfg)
    with torch.no_grad():
        tc.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]))
        tc.b_enc.copy_(torch.tensor([0.0, 0.0, 0.5]))
        tc.W_dec.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
        tc.b_dec.copy_(torch.tensor([10.0, 20.0, 30.0]))
        assert tc.W_skip is not None
        tc.W_skip.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    # x = [3, 2]: pre = [3, 2, 1.5] (b_dec is NOT subtracted) → latent 0 with 3.
    # recon = 3·[1, 0, 0] + b_dec + W_skip·x = [3+10+3, 20+2, 30+5].
    x = torch.tensor([[3.0, 2.0]])
    out = tc(x)
    torch.testing.assert_close(tc.encode_dense(x), torch.tensor([[3.0, 0.0, 0.0]]))
    torch.testing.assert_close(out.recon, torch.tensor([[16.0, 22.0, 35.0]]))
    torch.testing.assert_close(
        tc.decode(out.latent_acts, out.latent_indices), torch.tensor([[13.0, 20.0, 30.0]])
    )
    torch.testing.assert_close(tc.skip(x), torch.tensor([[3.0, 2.0, 5.0]]))
    torch.testing.assert_close(tc.pre_activation(x), torch.tensor([[3.0, 2.0, 1.5]]))


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_matches_naive_formula_in_values_and_gradients(skip: bool, kernel: str) -> None:
    tc = make_transcoder(d_in=8, d_out=6, d_sae=40, k=5, skip=skip)
    x = random_inputs(24, 8)
    target = random_inputs(24, 6, seed=2)
    acts, recon = naive(tc, x)
    (recon - target).pow(2).sum(-1).mean().backward()
    oracle = {n: p.grad.clone() for n, p in tc.named_parameters() if p.grad is not None}
    assert set(oracle) == {n for n, _ in tc.named_parameters()}
    assert ("W_skip" in oracle) == skip
    tc.zero_grad()
    tc.kernel = kernel
    out = tc(x)
    torch.testing.assert_close(tc.encode_dense(x), acts.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.recon, recon.detach(), rtol=1e-5, atol=1e-6)
    (out.recon - target).pow(2).sum(-1).mean().backward()
    for name, grad in oracle.items():
        torch.testing.assert_close(
            dict(tc.named_parameters())[name].grad, grad, rtol=1e-5, atol=1e-6, msg=name
        )


def test_shapes_config_and_layer() -> None:
    tc = make_transcoder(d_in=8, d_out=6, d_sae=32, skip=True, layer=3)
    assert tc.W_enc.shape == (8, 32) and tc.W_dec.shape == (32, 6) and tc.b_dec.shape == (6,)
    assert tc.W_skip is not None and tc.W_skip.shape == (6, 8)
    assert tc.layer == 3 and tc.d_out == 6
    assert tc.cfg.output_hookpoint == "model.layers.3.mlp"
    assert make_transcoder(skip=False).W_skip is None
    assert [
        layer_of_hookpoint(h) for h in ("model.layers.12.mlp:input", "mlp_in:7", "transformer.h.0.mlp")
    ] == [
        12,
        7,
        0,
    ]
    assert layer_of_hookpoint("lm_head") is None


def test_a_transcoder_needs_d_out_and_k() -> None:
    with pytest.raises(ConfigError, match="d_out"):
        Transcoder(SAEConfig(architecture="transcoder", d_in=4, d_sae=8, k=2))
    with pytest.raises(ConfigError, match="needs k"):
        Transcoder(SAEConfig(architecture="transcoder", d_in=4, d_sae=8, d_out=4))


@pytest.mark.parametrize("skip", [False, True])
def test_native_round_trip_is_exact(tmp_path: Path, skip: bool) -> None:
    tc = make_transcoder(skip=skip)
    save_sae(tc, tmp_path / "tc")
    loaded = load_sae(tmp_path / "tc")
    assert isinstance(loaded, Transcoder)
    assert loaded.cfg.d_out == 6 and loaded.cfg.output_hookpoint_alias == "mlp_out:1"
    assert (
        set(loaded.file_tensors())
        == set(tc.file_tensors())
        == {"W_enc", "b_enc", "W_dec", "b_dec"} | ({"W_skip"} if skip else set())
    )
    for name, tensor in tc.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name
    x = random_inputs(10, 8)
    assert torch.equal(loaded(x).recon, tc(x).recon)


def test_folded_scales_give_the_same_latents_and_raw_outputs() -> None:
    tc = make_transcoder(skip=True)
    x, s_in, s_out = random_inputs(16, 8), 0.3, 2.5
    before = tc(x * s_in)
    tc.fold_scales(s_in, s_out)
    after = tc(x)
    torch.testing.assert_close(after.latent_acts, before.latent_acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after.recon, before.recon / s_out, rtol=1e-5, atol=1e-6)
    assert tc.cfg.normalization == {
        "method": "unit_mean_squared_norm",
        "scale": s_in,
        "output_scale": s_out,
        "folded": True,
    }
    with pytest.raises(ConfigError, match="already"):
        tc.fold_scales(1.0, 1.0)
    with pytest.raises(ConfigError, match="fold_scales"):
        fold_input_scale(make_transcoder(), 2.0)


def test_set_reads_one_folder_per_layer(tmp_path: Path) -> None:
    for layer in (2, 0, 1):
        save_sae(make_transcoder(layer=layer, seed=layer), tmp_path / "set" / f"mlp_in_{layer}")
    tcs = load_transcoder_set(tmp_path / "set")
    assert tcs.layers == (0, 1, 2) and [t.layer for t in tcs.transcoders] == [0, 1, 2]
    assert tcs.model == "tiny" and tcs.at(1) is tcs.transcoders[1]
    with pytest.raises(SaescopeError, match="no transcoder at layer 5"):
        tcs.at(5)
    one = load_transcoder_set(tmp_path / "set" / "mlp_in_1")
    assert one.layers == (1,)


def test_set_refuses_what_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaescopeError, match="holds no transcoders"):
        load_transcoder_set(tmp_path / "empty")
    save_sae(make_sae("topk"), tmp_path / "sae")
    with pytest.raises(SaescopeError, match="topk SAE, not a transcoder"):
        load_transcoder_set(tmp_path / "sae")
    save_sae(make_transcoder(layer=0), tmp_path / "twice" / "a")
    save_sae(make_transcoder(layer=0, seed=1), tmp_path / "twice" / "b")
    with pytest.raises(SaescopeError, match="two transcoders of layer 0"):
        load_transcoder_set(tmp_path / "twice")
    other = make_transcoder(layer=1)
    other.cfg = other.cfg.with_updates(model="another")
    save_sae(make_transcoder(layer=0), tmp_path / "mixed" / "a")
    save_sae(other, tmp_path / "mixed" / "b")
    with pytest.raises(SaescopeError, match="different models"):
        load_transcoder_set(tmp_path / "mixed")
