"""Gated SAE: inference against the paper's formula written naively, the loss (gate L1, auxiliary
reconstruction through a frozen decoder) in values and gradients, what each path learns from,
kernels, learning, files and bad settings."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from saescope.errors import ConfigError, SaescopeError
from saescope.sae import SAEConfig
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.gated import GatedSAE, encoder_init_scale
from saescope.sae.init import initialize

from .builders import (
    assert_kernels_agree,
    make_sae,
    parameter_grads,
    random_inputs,
    sparse_dataset,
    step_loss,
    train,
)

L1 = 0.2


def gated(seed: int = 0, d_sae: int = 40, l1: float = L1, kernel: str = "reference") -> GatedSAE:
    """A gated SAE whose rescale and magnitude bias are random too (initialisation zeroes them)."""
    sae = make_sae(GatedSAE, d_sae=d_sae, k=None, seed=seed, kernel=kernel, gate_l1_coefficient=l1)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        sae.r_mag.copy_(0.5 * torch.randn(d_sae, generator=gen))
        sae.b_mag.copy_(0.2 * torch.randn(d_sae, generator=gen))
    return sae


def paper_codes(sae: GatedSAE, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(f(x), π_gate, π_mag) as Rajamanoharan et al. 2024 write them, with their own weight names:
    W_gate = W_enc, W_mag = exp(r_mag) ⊙ W_gate, f = 1[π_gate > 0] ⊙ ReLU(π_mag)."""
    W_gate, b_gate = sae.W_enc, sae.b_enc
    W_mag = W_gate * sae.r_mag.exp()
    centred = x - sae.b_dec
    pi_gate = centred @ W_gate + b_gate
    pi_mag = centred @ W_mag + sae.b_mag
    return (pi_gate > 0).float() * torch.relu(pi_mag), pi_gate, pi_mag


def paper_loss(sae: GatedSAE, x: Tensor, l1: float) -> Tensor:
    """‖x − x̂(f(x))‖² + λ‖ReLU(π_gate)·‖W_dec‖‖₁ + ‖x − x̂_frozen(ReLU(π_gate))‖², mean over rows,
    x̂_frozen using a detached copy of the decoder."""
    f, pi_gate, _ = paper_codes(sae, x)
    recon = f @ sae.W_dec + sae.b_dec
    via_gate = torch.relu(pi_gate)
    sparsity = l1 * (via_gate * sae.W_dec.norm(dim=1)).sum(-1).mean()
    frozen = via_gate @ sae.W_dec.detach() + sae.b_dec.detach()
    return (x - recon).pow(2).sum(-1).mean() + sparsity + (x - frozen).pow(2).sum(-1).mean()


@pytest.mark.parametrize("kernel", ["reference", "torch"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_inference_equals_the_paper_formula_written_naively(kernel: str, mode: str) -> None:
    sae = gated(kernel=kernel).train(mode == "train")
    x = random_inputs(50, sae.d_in)
    f, pi_gate, pi_mag = paper_codes(sae, x)
    assert bool(((pi_gate > 0) & (pi_mag > 0)).any()), "the test needs latents that fire"
    assert bool(((pi_gate > 0) & (pi_mag <= 0)).any()), "the test needs open gates of zero magnitude"
    assert bool(((pi_gate <= 0) & (pi_mag > 0)).any()), (
        "the test needs closed gates whose magnitude is positive"
    )
    with torch.no_grad():
        torch.testing.assert_close(sae.encode_dense(x), f, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sae(x).recon, f @ sae.W_dec + sae.b_dec, rtol=1e-5, atol=1e-5)


def test_hand_set_weights_give_hand_computed_outputs() -> None:
    sae = GatedSAE(SAEConfig(architecture="gated", d_in=2, d_sae=3))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([-0.5, 0.0, -1.0]))  # the gate's bias
        sae.r_mag.copy_(torch.tensor([math.log(2.0), 0.0, 0.0]))
        sae.b_mag.copy_(torch.tensor([0.0, -0.5, 0.0]))
    sae.eval()
    x = torch.tensor([[1.0, 1.0], [0.2, 2.0]])
    # row 0: π_gate = [0.5, 1, 1] all open; π_mag = [2·1, 1 − 0.5, 2] → [2, 0.5, 2]
    # row 1: π_gate = [−0.3, 2, 1.2] → latent 0 closed; π_mag = [·, 1.5, 2.2]
    torch.testing.assert_close(sae.encode_dense(x), torch.tensor([[2.0, 0.5, 2.0], [0.0, 1.5, 2.2]]))
    torch.testing.assert_close(sae(x).recon, torch.tensor([[4.0, 2.5], [2.2, 3.7]]))


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_loss_equals_the_paper_objective_in_values_and_gradients(kernel: str) -> None:
    sae = gated(kernel=kernel).train()
    x = random_inputs(32, sae.d_in)
    naive = paper_loss(sae, x, L1)
    naive.backward()
    oracle = parameter_grads(sae)
    assert set(oracle) == {"W_enc", "b_enc", "W_dec", "b_dec", "r_mag", "b_mag"}
    sae.zero_grad()
    loss = step_loss(sae, x)
    torch.testing.assert_close(loss, naive.detach(), rtol=1e-6, atol=1e-6)
    loss.backward()
    for name, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, oracle[name], rtol=1e-5, atol=1e-5, msg=name)


def test_the_gate_learns_only_from_the_penalty_and_the_auxiliary_term_which_leaves_the_decoder() -> None:
    sae = gated().train()
    x = random_inputs(32, sae.d_in)
    out = sae(x)
    (out.recon - x).pow(2).sum(-1).mean().backward()
    assert sae.b_enc.grad is not None and float(sae.b_enc.grad.abs().max()) < 1e-5  # b_gate: a step only
    for name in ("r_mag", "b_mag", "W_enc", "W_dec"):
        grad = getattr(sae, name).grad
        assert grad is not None and float(grad.abs().max()) > 1e-3, name
    sae.zero_grad()
    out = sae(x)
    gate = out.pre_acts.gather(-1, out.latent_indices)
    own = sae.architecture_loss(x, gate, out)
    own.extra_loss.backward()
    assert sae.W_dec.grad is None or float(sae.W_dec.grad.abs().max()) == 0.0  # the frozen decoder copy
    assert sae.r_mag.grad is None and sae.b_mag.grad is None
    assert sae.b_enc.grad is not None and float(sae.b_enc.grad.abs().max()) > 1e-3


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reference_and_torch_kernels_agree(mode: str) -> None:
    sae = gated(d_sae=64).train(mode == "train")
    x = random_inputs(40, sae.d_in)
    assert_kernels_agree(sae, x)


def test_learns_a_sparse_dictionary_and_the_penalty_lowers_l0() -> None:
    """With the trainer's unit-norm decoder: the gate's penalty weighs the decoder norms, and the
    frozen-decoder auxiliary term does not hold them up, so an unconstrained decoder shrinks."""
    data = sparse_dataset(4096)
    free = make_sae(GatedSAE, d_in=16, d_sae=64, k=None, gate_l1_coefficient=0.0)
    free_result = train(free, data, lr=1e-2, unit_decoder=True)
    sae = make_sae(GatedSAE, d_in=16, d_sae=64, k=None, gate_l1_coefficient=0.2)
    result = train(sae, data, lr=1e-2, unit_decoder=True)
    assert result.fvu_end < 0.15, result
    assert result.fvu_end < 0.1 * result.fvu_start, result
    assert result.l0_end < 0.6 * free_result.l0_end, (free_result, result)


def test_initialize_starts_the_magnitudes_at_the_gate_and_reconstructions_at_the_input_s_size() -> None:
    """A ReLU SAE at first, its encoder the decoder's transpose scaled so that the reconstruction of
    unit-norm inputs has about their norm (unscaled: d_sae / 2·d_in times too large)."""
    sae = GatedSAE(SAEConfig(architecture="gated", d_in=64, d_sae=512))
    initialize(sae, generator=torch.Generator().manual_seed(0))
    assert encoder_init_scale(64, 512) == 0.25 and encoder_init_scale(64, 64) == 1.0
    assert torch.equal(sae.W_enc, 0.25 * sae.W_dec.t())
    assert not sae.r_mag.detach().any() and not sae.b_mag.detach().any()
    x = random_inputs(256, sae.d_in)
    x = x / x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        torch.testing.assert_close(sae.encode_dense(x), pre.relu())
        ratio = float(sae(x).recon.norm(dim=1).mean())
    assert 0.7 < ratio < 1.4, ratio


def test_save_load_round_trip_is_exact_and_a_missing_rescale_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sae = gated()
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, GatedSAE)
    for name, tensor in sae.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name
    x = random_inputs(30, sae.d_in)
    assert torch.equal(loaded.encode_dense(x), sae.eval().encode_dense(x))
    assert set(sae.file_tensors()) == {"W_enc", "b_enc", "W_dec", "b_dec", "r_mag", "b_mag"}
    tensors = {k: v.contiguous() for k, v in sae.file_tensors().items() if k != "r_mag"}
    save_file(tensors, str(tmp_path / "sae" / "sae.safetensors"))
    with pytest.raises(SaescopeError, match="has no tensor 'r_mag'"):
        load_sae(tmp_path / "sae")


@pytest.mark.parametrize("value", [-0.1, math.nan, "0.1"])
def test_absurd_penalty_raises_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="--gate-l1-coefficient must be >= 0"):
        GatedSAE(SAEConfig(architecture="gated", d_in=4, d_sae=8, hyperparams={"gate_l1_coefficient": value}))
