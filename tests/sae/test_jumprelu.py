"""JumpReLU SAE: outputs, the straight-through estimators, kernels, learning, files, bad settings."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from saescope.errors import ConfigError, SaescopeError
from saescope.sae import SAEConfig
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.init import initialize
from saescope.sae.jumprelu import JumpReLUFn, JumpReLUSAE, exact_log

from .builders import assert_kernels_agree, make_sae, parameter_grads, random_inputs, sparse_dataset, train


def rect(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).float()


def dense_jumprelu_loss(sae: JumpReLUSAE, x: torch.Tensor, l0_coefficient: float) -> torch.Tensor:
    """The paper's objective written densely, its estimators as surrogate terms whose first
    derivatives are the pseudo-derivatives (independent of saescope's autograd Functions):
    y = z·H(z−θ) with ∂y/∂z = H, ∂y/∂θ = −(θ/ε)K; L0 = ΣH(z−θ) with ∂/∂θ = −(1/ε)K, z detached."""
    eps = sae.bandwidth
    z = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    theta = sae.log_threshold.exp()
    gate = (z > theta).float().detach()
    kernel = rect((z - theta).detach() / eps)
    acts = z * gate + (-(theta.detach() / eps) * kernel) * (theta - theta.detach())
    recon = acts @ sae.W_dec + sae.b_dec
    l0 = gate + (-(1 / eps) * kernel) * (theta - theta.detach())
    return (recon - x).pow(2).sum(-1).mean() + l0_coefficient * l0.sum(-1).mean()


def test_hand_set_weights_give_hand_computed_outputs() -> None:
    sae = JumpReLUSAE(
        SAEConfig(architecture="jumprelu", d_in=3, d_sae=3, hyperparams={"l0_coefficient": 0.5})
    )
    sae.eval()
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(3))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]))
        sae.log_threshold.copy_(torch.tensor([0.5, 1.0, 2.0]).log())
    x = torch.tensor([[0.6, 0.9, 2.5], [0.4, 1.5, -1.0]])
    torch.testing.assert_close(sae.threshold, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(sae.encode_dense(x), torch.tensor([[0.6, 0.0, 2.5], [0.0, 1.5, 0.0]]))
    torch.testing.assert_close(sae(x).recon, torch.tensor([[0.6, 0.0, 7.5], [0.0, 3.0, 0.0]]))
    # L0: two active latents in the first row, one in the second → mean 1.5, times λ = 0.5.
    torch.testing.assert_close(sae.sparsity_loss(sae(x)), torch.tensor(0.75))


def test_straight_through_estimators_by_hand() -> None:
    eps = 0.2
    z = torch.tensor([1.05, 0.95, 1.5, 0.5], requires_grad=True)  # in band above, in band below, outside
    theta = torch.ones(4, requires_grad=True)
    JumpReLUFn.apply(z, theta, eps).sum().backward()
    assert z.grad is not None and theta.grad is not None
    torch.testing.assert_close(z.grad, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    torch.testing.assert_close(theta.grad, torch.tensor([-5.0, -5.0, 0.0, 0.0]))  # −θ/ε inside the band

    hyperparams = {"l0_coefficient": 1.0, "jumprelu_init_threshold": 1.0, "jumprelu_bandwidth": eps}
    sae = JumpReLUSAE(SAEConfig(architecture="jumprelu", d_in=2, d_sae=2, hyperparams=hyperparams))
    out = sae(torch.zeros(1, 2))._replace(
        pre_acts=torch.tensor([[1.05, 2.0], [0.95, 0.0]], requires_grad=True)
    )
    loss = sae.sparsity_loss(out)
    torch.testing.assert_close(loss, torch.tensor(1.0))  # rows: 2 active, 0 active
    loss.backward()
    # ∂L0/∂θ = −(1/ε)·K summed over rows / N rows: latent 0 is in the band twice → −(5 + 5)/2;
    # through log θ (θ = 1) the gradient is the same. Nothing reaches the pre-activations or weights.
    assert sae.log_threshold.grad is not None
    torch.testing.assert_close(sae.log_threshold.grad, torch.tensor([-5.0, 0.0]))
    assert out.pre_acts.grad is None and sae.W_enc.grad is None


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_loss_matches_dense_objective_in_values_and_gradients(kernel: str) -> None:
    eps = 0.4
    sae = make_sae(
        JumpReLUSAE,
        d_sae=40,
        k=None,
        jumprelu_init_threshold=0.3,
        jumprelu_bandwidth=eps,
        l0_coefficient=0.05,
    ).train()
    x = random_inputs(32, sae.d_in)
    with torch.no_grad():
        z = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    below = ((z > 0.3 - eps / 2) & (z <= 0.3)).sum()
    assert below > 0, "the test needs pre-activations just below θ, where only the estimator acts"
    dense = dense_jumprelu_loss(sae, x, 0.05)
    dense.backward()
    oracle = parameter_grads(sae)
    sae.zero_grad()
    sae.kernel = kernel
    out = sae(x)
    loss = (out.recon - x).pow(2).sum(-1).mean() + sae.sparsity_loss(out)
    torch.testing.assert_close(loss, dense.detach(), rtol=1e-6, atol=1e-6)
    loss.backward()
    for name, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, oracle[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reference_and_torch_kernels_agree(mode: str) -> None:
    sae = make_sae(
        JumpReLUSAE, d_sae=64, k=None, jumprelu_init_threshold=0.2, jumprelu_bandwidth=0.1, l0_coefficient=0.1
    )
    sae.train(mode == "train")
    x = random_inputs(40, sae.d_in)
    assert_kernels_agree(sae, x)


def test_training_mode_selects_the_band_below_threshold_with_zero_value() -> None:
    sae = make_sae(JumpReLUSAE, d_sae=32, k=None, jumprelu_init_threshold=0.3, jumprelu_bandwidth=0.4)
    x = random_inputs(16, sae.d_in)
    sae.eval()
    eval_out = sae(x)
    sae.train()
    train_out = sae(x)
    assert train_out.latent_acts.shape[1] >= eval_out.latent_acts.shape[1]
    torch.testing.assert_close(train_out.recon, eval_out.recon, rtol=0, atol=0)


def test_learns_a_sparse_dictionary_and_the_l0_penalty_raises_thresholds() -> None:
    data = sparse_dataset(4096)
    kwargs: dict[str, Any] = {"jumprelu_init_threshold": 0.1, "jumprelu_bandwidth": 0.05}
    plain_sae = make_sae(JumpReLUSAE, d_in=16, d_sae=64, k=None, l0_coefficient=0.0, **kwargs)
    plain = train(plain_sae, data, lr=1e-2)
    sae = make_sae(JumpReLUSAE, d_in=16, d_sae=64, k=None, l0_coefficient=0.03, **kwargs)
    result = train(sae, data, lr=1e-2)
    assert result.fvu_end < 0.25, result
    assert result.fvu_end < 0.05 * result.fvu_start, result
    assert result.l0_end < 0.5 * plain.l0_end, (plain, result)
    assert float(sae.threshold.detach().mean()) > 0.15 > float(plain_sae.threshold.detach().mean())


def test_initial_threshold_and_initialize() -> None:
    sae = make_sae(JumpReLUSAE, k=None, jumprelu_init_threshold=0.05)
    torch.testing.assert_close(sae.threshold, torch.full((sae.d_sae,), 0.05))
    with torch.no_grad():
        sae.log_threshold.fill_(3.0)
    initialize(sae)
    torch.testing.assert_close(sae.threshold, torch.full((sae.d_sae,), 0.05))


def test_the_penalty_reads_the_sae_s_own_bandwidth_and_coefficient() -> None:
    """The L0 penalty's θ-gradient is −(λ/ε)·K((z−θ)/ε) / N with the SAE's own ε and λ (there is no
    second copy of them that could disagree, as the trainer's settings once could)."""
    grads = []
    for eps, l0 in [(0.5, 1.0), (0.25, 1.0), (0.5, 3.0)]:
        hyperparams = {"l0_coefficient": l0, "jumprelu_init_threshold": 1.0, "jumprelu_bandwidth": eps}
        sae = JumpReLUSAE(SAEConfig(architecture="jumprelu", d_in=2, d_sae=2, hyperparams=hyperparams))
        out = sae(torch.zeros(1, 2))._replace(pre_acts=torch.tensor([[1.2, 5.0]]))
        sae.sparsity_loss(out).backward()
        assert sae.log_threshold.grad is not None
        grads.append(float(sae.log_threshold.grad[0]))
    assert grads == pytest.approx([-2.0, 0.0, -6.0])  # 1.2 is outside the band of ε = 0.25


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sae = make_sae(JumpReLUSAE, d_sae=24, k=None)
    with torch.no_grad():
        sae.log_threshold.copy_(torch.linspace(-4, 1, 24))
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, JumpReLUSAE)
    assert torch.equal(loaded.threshold, sae.threshold)
    x = random_inputs(50, sae.d_in)
    sae.eval()
    assert torch.equal(loaded.encode_dense(x), sae.encode_dense(x))
    assert torch.equal(loaded(x).recon, sae(x).recon)


def test_exact_log_recovers_thresholds_and_allows_zero() -> None:
    logs = torch.linspace(-9, 2, 1001)
    assert torch.equal(exact_log(logs.exp(), torch.float32).exp(), logs.exp())
    assert exact_log(torch.tensor([0.0]), torch.float32).item() == -math.inf


def test_negative_threshold_in_file_is_refused() -> None:
    sae = make_sae(JumpReLUSAE, d_sae=4, k=None)
    tensors = {**sae.file_tensors(), "threshold": torch.tensor([0.1, -0.2, 0.3, 0.4])}
    with pytest.raises(SaescopeError, match="threshold"):
        sae.load_file_tensors(tensors)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jumprelu_init_threshold": 0.0}, "initial threshold"),
        ({"jumprelu_init_threshold": -1.0}, "initial threshold"),
        ({"jumprelu_bandwidth": 0.0}, "bandwidth"),
        ({"jumprelu_bandwidth": math.nan}, "bandwidth"),
    ],
)
def test_absurd_settings_raise_config_error(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        JumpReLUSAE(SAEConfig(architecture="jumprelu", d_in=4, d_sae=8, hyperparams=kwargs))
