"""ReLU SAE with decoder-norm-weighted L1: outputs, the penalty, kernels, learning, files."""

from __future__ import annotations

import pytest
import torch

from saescope.errors import ConfigError
from saescope.sae import SAEConfig
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.relu import ReLUSAE

from .builders import assert_kernels_agree, make_sae, parameter_grads, random_inputs, sparse_dataset, train


def dense_relu_loss(sae: ReLUSAE, x: torch.Tensor, l1: float) -> torch.Tensor:
    """Anthropic's April 2024 objective written densely: ‖x − x̂‖² + λ Σ_j f_j ‖W_dec_j‖ (mean over rows)."""
    acts = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu()
    recon = acts @ sae.W_dec + sae.b_dec
    return (recon - x).pow(2).sum(-1).mean() + l1 * (acts * sae.W_dec.norm(dim=1)).sum(-1).mean()


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_forward_is_decode_of_encode(kernel: str) -> None:
    sae = make_sae(ReLUSAE, k=None, kernel=kernel)
    x = random_inputs(16, sae.d_in)
    out = sae(x)
    torch.testing.assert_close(out.recon, sae.decode(*sae.encode(x)[:2]), rtol=0, atol=0)
    # K is the most positive pre-activations of any row; every positive one is kept.
    assert out.latent_acts.shape[1] == int((out.pre_acts > 0).sum(-1).max())
    torch.testing.assert_close(sae.encode_dense(x), out.pre_acts.relu())


def test_hand_set_weights_give_hand_computed_outputs_and_penalty() -> None:
    sae = ReLUSAE(SAEConfig(architecture="relu", d_in=2, d_sae=3, hyperparams={"l1_coefficient": 2.0}))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.0, -0.5]))
        sae.W_dec.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]))
    x = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    # pre = [1, 1, 0.5] and [−1, 1, −0.5] → acts [1, 1, 0.5] and [0, 1, 0].
    out = sae(x)
    torch.testing.assert_close(sae.encode_dense(x), torch.tensor([[1.0, 1.0, 0.5], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(out.recon, torch.tensor([[3.5, 6.0], [0.0, 2.0]]))
    # ‖W_dec‖ = [5, 2, 1]: row sums 5 + 2 + 0.5 = 7.5 and 2 → mean 4.75, times λ = 2.
    penalty = sae.sparsity_loss(out)
    torch.testing.assert_close(penalty, torch.tensor(9.5))


def test_loss_matches_dense_objective_in_values_and_gradients() -> None:
    sae = make_sae(ReLUSAE, d_sae=40, k=None, l1_coefficient=0.3)
    x = random_inputs(24, sae.d_in)
    dense = dense_relu_loss(sae, x, 0.3)
    dense.backward()
    oracle = parameter_grads(sae)
    for kernel in ("reference", "torch"):
        sae.kernel = kernel
        sae.zero_grad()
        out = sae(x)
        loss = (out.recon - x).pow(2).sum(-1).mean() + sae.sparsity_loss(out)
        torch.testing.assert_close(loss, dense.detach(), rtol=1e-6, atol=1e-6)
        loss.backward()
        for name, p in sae.named_parameters():
            torch.testing.assert_close(p.grad, oracle[name], rtol=1e-5, atol=1e-6, msg=f"{kernel}: {name}")


def test_reference_and_torch_kernels_agree() -> None:
    sae = make_sae(ReLUSAE, d_sae=64, k=None, l1_coefficient=0.1)
    x = random_inputs(40, sae.d_in)
    assert_kernels_agree(sae, x)


def test_learns_a_sparse_dictionary_and_the_penalty_sparsifies() -> None:
    data = sparse_dataset(4096)
    plain = train(make_sae(ReLUSAE, d_in=16, d_sae=64, k=None, l1_coefficient=0.0), data, lr=1e-2)
    penalised = train(make_sae(ReLUSAE, d_in=16, d_sae=64, k=None, l1_coefficient=0.3), data, lr=1e-2)
    assert penalised.fvu_end < 0.3, penalised
    assert penalised.fvu_end < 0.05 * penalised.fvu_start, penalised
    # The same run without the penalty keeps about three times as many latents active.
    assert penalised.l0_end < 0.5 * plain.l0_end, (plain, penalised)


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sae = make_sae(ReLUSAE, d_sae=24, k=None)
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, ReLUSAE)
    x = random_inputs(10, sae.d_in)
    assert torch.equal(loaded(x).recon, sae(x).recon)
    for name, tensor in sae.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name


@pytest.mark.parametrize(("d_in", "d_sae"), [(0, 8), (4, 0), (-1, 8)])
def test_absurd_settings_raise_config_error(d_in: int, d_sae: int) -> None:
    with pytest.raises(ConfigError):
        ReLUSAE(SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae))
