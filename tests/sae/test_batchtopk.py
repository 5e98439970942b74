"""BatchTopK SAE: batch-level selection, the inference threshold, kernels, learning, files."""

from __future__ import annotations

import pytest
import torch

from saescope.errors import ConfigError
from saescope.sae import SAEConfig
from saescope.sae.batchtopk import BatchTopKSAE
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.init import initialize

from .builders import assert_kernels_agree, make_sae, parameter_grads, random_inputs, sparse_dataset, train


def dense_batchtopk(sae: BatchTopKSAE, x: torch.Tensor) -> torch.Tensor:
    """SAELens's and the paper's formula: keep the k·N largest of relu(pre) over the flattened batch."""
    acts = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu()
    flat = acts.flatten()
    top = flat.topk(sae.k * x.shape[0])
    return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)


def test_training_mode_keeps_the_k_n_largest_of_the_batch() -> None:
    sae = make_sae(BatchTopKSAE, d_sae=32, k=3).train()
    x = random_inputs(20, sae.d_in)
    out = sae(x)
    expected = dense_batchtopk(sae, x)
    torch.testing.assert_close(sae.encode_dense(x), expected.detach())
    assert int((out.latent_acts > 0).sum()) == 3 * 20
    counts = (out.latent_acts > 0).sum(-1)
    assert counts.min() < counts.max(), "rows should get different numbers of latents"
    torch.testing.assert_close(out.recon, sae.decode(out.latent_acts, out.latent_indices), rtol=0, atol=0)
    torch.testing.assert_close(out.recon, (expected @ sae.W_dec + sae.b_dec).detach(), rtol=1e-5, atol=1e-6)


def test_eval_mode_fires_where_pre_activation_exceeds_threshold() -> None:
    sae = BatchTopKSAE(SAEConfig(architecture="batchtopk", d_in=2, d_sae=3, k=1))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.threshold.fill_(0.5)
    sae.eval()
    x = torch.tensor([[0.4, 0.6], [1.0, -2.0], [0.2, 0.2]])
    # pre = [0.4, 0.6, 1.0] → latents 1 and 2; [1, −2, −1] → latent 0; [0.2, 0.2, 0.4] → none.
    torch.testing.assert_close(
        sae.encode_dense(x), torch.tensor([[0.0, 0.6, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    )
    torch.testing.assert_close(sae(x).recon, torch.tensor([[1.0, 1.6], [1.0, 0.0], [0.0, 0.0]]))


def test_threshold_is_running_mean_then_ema_of_smallest_kept_activation() -> None:
    sae = make_sae(BatchTopKSAE, d_sae=8, k=2, batchtopk_threshold_momentum=0.25).train()
    minima = [0.8, 0.4, 0.6, 1.0, 0.2, 0.5]
    expected = 0.0
    for step, smallest in enumerate(minima, start=1):
        acts = torch.tensor([[smallest, 2.0, 0.0], [3.0, 0.0, 0.0]])
        idx = torch.tensor([[0, 1, 2], [3, 4, 5]])
        out = sae(random_inputs(2, sae.d_in))._replace(latent_acts=acts, latent_indices=idx)
        assert float(sae.sparsity_loss(out)) == 0.0
        weight = max(1 / step, 0.25)
        expected += weight * (smallest - expected)
        torch.testing.assert_close(sae.threshold, torch.full((8,), expected))
    # A batch without positive activations leaves θ alone; eval mode never updates it.
    zeros = out._replace(latent_acts=torch.zeros(2, 3))
    sae.sparsity_loss(zeros)
    sae.eval()
    sae.sparsity_loss(out._replace(latent_acts=torch.full((2, 3), 9.0)))
    torch.testing.assert_close(sae.threshold, torch.full((8,), expected))
    assert int(sae.threshold_steps) == len(minima)
    initialize(sae)
    assert float(sae.threshold.abs().max()) == 0.0 and int(sae.threshold_steps) == 0


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reference_and_torch_kernels_agree(mode: str) -> None:
    sae = make_sae(BatchTopKSAE, d_sae=48, k=4)
    with torch.no_grad():
        sae.threshold.fill_(0.3)
    sae.train(mode == "train")
    x = random_inputs(24, sae.d_in)
    ref, fast = assert_kernels_agree(sae, x)
    assert torch.equal(fast.latent_indices, ref.latent_indices)


def test_training_gradients_match_dense_formula() -> None:
    sae = make_sae(BatchTopKSAE, d_sae=40, k=3).train()
    x = random_inputs(16, sae.d_in)
    recon = dense_batchtopk(sae, x) @ sae.W_dec + sae.b_dec
    (recon - x).pow(2).sum(-1).mean().backward()
    oracle = parameter_grads(sae)
    for kernel in ("reference", "torch"):
        sae.kernel = kernel
        sae.zero_grad()
        (sae(x).recon - x).pow(2).sum(-1).mean().backward()
        for name, p in sae.named_parameters():
            torch.testing.assert_close(p.grad, oracle[name], rtol=1e-5, atol=1e-6, msg=name)


def test_learns_a_sparse_dictionary_and_a_threshold_giving_about_k_latents() -> None:
    data = sparse_dataset(4096)
    sae = make_sae(BatchTopKSAE, d_in=16, d_sae=64, k=3)
    result = train(sae, data, steps=200)
    assert result.fvu_end < 0.3, result
    assert result.fvu_end < 0.4 * result.fvu_start, result
    # In eval mode θ replaces the batch top-k: the mean number of active latents stays near k.
    assert 1.5 <= result.l0_end <= 6.0, result
    assert float(sae.threshold[0]) > 0


def test_save_load_round_trip_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sae = make_sae(BatchTopKSAE, d_sae=24, k=3)
    with torch.no_grad():
        sae.threshold.fill_(0.37)
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert isinstance(loaded, BatchTopKSAE) and not loaded.training
    for name, tensor in sae.file_tensors().items():
        assert torch.equal(loaded.file_tensors()[name], tensor), name
    x = random_inputs(10, sae.d_in)
    sae.eval()
    assert torch.equal(loaded(x).recon, sae(x).recon)
    assert torch.equal(loaded.encode_dense(x), sae.encode_dense(x))


@pytest.mark.parametrize(
    ("d_sae", "k", "match"), [(8, 9, "k must be in"), (8, None, "needs k"), (8, -1, "k must")]
)
def test_absurd_settings_raise_config_error(d_sae: int, k: int | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BatchTopKSAE(SAEConfig(architecture="batchtopk", d_in=4, d_sae=d_sae, k=k))


def test_absurd_momentum_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="threshold momentum"):
        BatchTopKSAE(
            SAEConfig(
                architecture="batchtopk",
                d_in=4,
                d_sae=8,
                k=2,
                hyperparams={"batchtopk_threshold_momentum": 0.0},
            )
        )
