"""TopK SAE: outputs by hand, dense oracle, kernels, learning, files, bad settings."""

from __future__ import annotations

import pytest
import torch

from saescope.errors import ConfigError
from saescope.sae import SAEConfig
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.topk import TopKSAE

from .builders import assert_kernels_agree, make_sae, parameter_grads, random_inputs, sparse_dataset, train


def dense_topk_forward(sae: TopKSAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook formula: topk_k(relu((x − b_dec) @ W_enc + b_enc)) @ W_dec + b_dec, all dense."""
    acts = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu()
    top = acts.topk(sae.k, dim=-1)
    dense = torch.zeros_like(acts).scatter(-1, top.indices, top.values)
    return dense, dense @ sae.W_dec + sae.b_dec


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_forward_is_decode_of_encode(kernel: str) -> None:
    sae = make_sae(TopKSAE, kernel=kernel)
    x = random_inputs(16, sae.d_in)
    out = sae(x)
    acts, idx, pre = sae.encode(x)
    torch.testing.assert_close(out.recon, sae.decode(acts, idx), rtol=0, atol=0)
    assert out.latent_acts.shape == (16, 4) and out.latent_indices.dtype == torch.int64
    assert pre.shape == (16, sae.d_sae)


def test_hand_set_weights_give_hand_computed_outputs() -> None:
    sae = TopKSAE(SAEConfig(architecture="topk", d_in=2, d_sae=3, k=2))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.0, 0.5]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_dec.copy_(torch.tensor([1.0, 1.0]))
    # x − b_dec = [2, 1] → pre = [2, 1, 1.5] → keep latents 0 (2) and 2 (1.5).
    # x − b_dec = [−2, −3] → pre = [−2, −3, 1.5] → latent 2 (1.5) and latent 0 with ReLU(−2) = 0.
    x = torch.tensor([[3.0, 2.0], [-1.0, -2.0]])
    dense = sae.encode_dense(x)
    torch.testing.assert_close(dense, torch.tensor([[2.0, 0.0, 1.5], [0.0, 0.0, 1.5]]))
    recon = sae(x).recon
    torch.testing.assert_close(recon, torch.tensor([[2 + 1.5 + 1, 1.5 + 1], [1.5 + 1, 1.5 + 1]]))


def test_matches_dense_formula_in_values_and_gradients() -> None:
    sae = make_sae(TopKSAE, d_sae=48, k=5)
    x = random_inputs(32, sae.d_in)
    dense, recon = dense_topk_forward(sae, x)
    ((recon - x).pow(2).sum(-1).mean()).backward()
    oracle = parameter_grads(sae)
    torch.testing.assert_close(sae.encode_dense(x), dense.detach())
    for kernel in ("reference", "torch"):
        sae.kernel = kernel
        sae.zero_grad()
        out = sae(x)
        torch.testing.assert_close(out.recon, recon.detach(), rtol=1e-5, atol=1e-6)
        (out.recon - x).pow(2).sum(-1).mean().backward()
        for name, grad in oracle.items():
            torch.testing.assert_close(dict(sae.named_parameters())[name].grad, grad, rtol=1e-5, atol=1e-6)


def test_reference_and_torch_kernels_agree() -> None:
    sae = make_sae(TopKSAE, d_sae=64, k=6)
    x = random_inputs(40, sae.d_in)
    ref, _ = assert_kernels_agree(sae, x)
    torch.testing.assert_close(
        sae.encode_dense(x),
        ref.pre_acts.new_zeros(ref.pre_acts.shape).scatter(-1, ref.latent_indices, ref.latent_acts).detach(),
    )


def test_learns_a_sparse_dictionary() -> None:
    data = sparse_dataset(4096)
    sae = make_sae(TopKSAE, d_in=16, d_sae=64, k=3)
    result = train(sae, data, steps=200)
    assert result.fvu_end < 0.25, result
    assert result.fvu_end < 0.4 * result.fvu_start, result
    assert result.l0_end == 3.0


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sae = make_sae(TopKSAE, d_sae=24, k=3)
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, TopKSAE) and loaded.cfg.k == 3
    for name, tensor in sae.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name
    x = random_inputs(10, sae.d_in)
    assert torch.equal(loaded(x).recon, sae(x).recon)


@pytest.mark.parametrize(
    ("d_sae", "k", "match"),
    [(8, 9, "k must be in"), (8, 0, "k must be in"), (8, None, "needs k"), (0, 1, "d_sae"), (-3, 1, "d_sae")],
)
def test_absurd_settings_raise_config_error(d_sae: int, k: int | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TopKSAE(SAEConfig(architecture="topk", d_in=4, d_sae=d_sae, k=k))


def test_config_of_another_architecture_is_refused() -> None:
    with pytest.raises(ConfigError, match="architecture 'relu'"):
        TopKSAE(SAEConfig(architecture="relu", d_in=4, d_sae=8, k=2))
    with pytest.raises(ConfigError, match="d_in"):
        TopKSAE(SAEConfig(architecture="topk", d_in=0, d_sae=8, k=2))
