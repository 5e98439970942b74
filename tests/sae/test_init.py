"""Initialisation, the geometric median, and folding the training input scale into the weights."""

from __future__ import annotations

import pytest
import torch

from saescope.errors import ConfigError
from saescope.sae import SAEConfig, SparseAutoencoder, get_architecture
from saescope.sae.batchtopk import BatchTopKSAE
from saescope.sae.gated import GatedSAE, encoder_init_scale
from saescope.sae.init import fold_input_scale, geometric_median, initialize
from saescope.sae.jumprelu import JumpReLUSAE

from .builders import ARCHITECTURES, k_of, make_sae, random_inputs


def fresh(architecture: str, d_in: int = 8, d_sae: int = 32) -> SparseAutoencoder:
    k = k_of(architecture)
    return get_architecture(architecture)(SAEConfig(architecture=architecture, d_in=d_in, d_sae=d_sae, k=k))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_initialize_sets_unit_decoder_rows_and_tied_encoder(architecture: str) -> None:
    sae = fresh(architecture)
    storage = sae.W_enc.data_ptr()
    b_dec = torch.arange(8.0)
    initialize(sae, generator=torch.Generator().manual_seed(3), b_dec=b_dec)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))
    # a gated SAE's encoder is scaled (by a power of two here: exactly)
    scale = encoder_init_scale(8, 32) if isinstance(sae, GatedSAE) else 1.0
    assert torch.equal(sae.W_enc, scale * sae.W_dec.t())
    assert sae.W_enc.data_ptr() == storage and sae.W_enc.t().is_contiguous(), "W_enc must stay latent-major"
    assert torch.equal(sae.b_enc, torch.zeros(32)) and torch.equal(sae.b_dec, b_dec)
    # Random directions: far from each other, not a fixed pattern.
    cos = sae.W_dec.detach() @ sae.W_dec.detach().t() - torch.eye(32)
    assert float(cos.abs().max()) < 0.99


def test_initialize_is_reproducible_with_a_generator_and_zeroes_b_dec_by_default() -> None:
    a, b, c = fresh("topk"), fresh("topk"), fresh("topk")
    initialize(a, generator=torch.Generator().manual_seed(7))
    initialize(b, generator=torch.Generator().manual_seed(7))
    initialize(c, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.W_dec, b.W_dec) and not torch.equal(a.W_dec, c.W_dec)
    assert torch.equal(a.b_dec, torch.zeros(8))


def test_initialize_refuses_a_b_dec_of_the_wrong_shape() -> None:
    with pytest.raises(ConfigError, match="b_dec"):
        initialize(fresh("relu"), b_dec=torch.zeros(9))


def test_initialize_resets_thresholds() -> None:
    jump = make_sae(JumpReLUSAE, k=None, jumprelu_init_threshold=0.02)
    batch = make_sae(BatchTopKSAE, k=2)
    with torch.no_grad():
        jump.log_threshold.fill_(1.0)
        batch.threshold.fill_(1.0)
        batch.threshold_steps.fill_(5)
    initialize(jump)
    initialize(batch)
    torch.testing.assert_close(jump.threshold, torch.full((32,), 0.02))
    assert float(batch.threshold.abs().max()) == 0.0 and int(batch.threshold_steps) == 0


def test_geometric_median_minimises_the_sum_of_distances() -> None:
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor([1, 2, 3, 1, 1, 5.0])
    m = geometric_median(x)
    # At the minimum, the unit vectors from m to the points cancel out.
    units = (x - m) / (x - m).norm(dim=1, keepdim=True)
    assert float(units.sum(0).norm()) < 1e-2 * 500
    cost = (x - m).norm(dim=1).sum()
    for _ in range(20):
        nudged = m + 0.05 * torch.randn(6)
        assert (x - nudged).norm(dim=1).sum() > cost


def test_geometric_median_is_robust_to_outliers_unlike_the_mean() -> None:
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(1))
    clean = geometric_median(x)
    x[:5] += 1000.0
    assert float((geometric_median(x) - clean).norm()) < 0.2
    assert float((x.mean(0) - clean).norm()) > 20


def test_geometric_median_in_one_dimension_is_the_median_and_handles_coincident_points() -> None:
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [100.0]])
    torch.testing.assert_close(
        geometric_median(x, max_iter=1000, tol=1e-9), torch.tensor([2.0]), atol=1e-3, rtol=0
    )
    same = torch.ones(10, 3) * 4.0
    torch.testing.assert_close(geometric_median(same), torch.full((3,), 4.0))
    with pytest.raises(ConfigError):
        geometric_median(torch.zeros(0, 3))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fold_input_scale_by_power_of_two_is_bit_exact(architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    if isinstance(sae, BatchTopKSAE):
        with torch.no_grad():
            sae.threshold.fill_(0.2)
    sae.eval()
    x = random_inputs(64, sae.d_in)
    scale = 0.25
    before = sae(x * scale)
    fold_input_scale(sae, scale)
    after = sae(x)
    # Scaling by a power of two is exact in floating point, so nothing may differ at all.
    assert torch.equal(after.latent_indices, before.latent_indices)
    assert torch.equal(after.latent_acts, before.latent_acts)
    assert torch.equal(after.recon, before.recon / scale)
    assert sae.cfg.normalization == {"method": "unit_mean_squared_norm", "scale": 0.25, "folded": True}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_fold_input_scale_keeps_latents_and_unscales_the_reconstruction(architecture: str) -> None:
    sae = make_sae(architecture, k=k_of(architecture))
    if isinstance(sae, BatchTopKSAE):
        with torch.no_grad():
            sae.threshold.fill_(0.2)
    sae.eval()
    unchanged = {n: t.clone() for n, t in sae.file_tensors().items() if n in ("b_enc", "threshold")}
    x = random_inputs(64, sae.d_in) * 30.0
    scale = 1 / 30.7
    before = sae(x * scale)
    fold_input_scale(sae, scale, method="custom")
    after = sae(x)
    assert torch.equal(after.latent_indices.sort(-1).values, before.latent_indices.sort(-1).values)
    torch.testing.assert_close(after.latent_acts, before.latent_acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after.recon, before.recon / scale, rtol=1e-5, atol=1e-4)
    for name, value in unchanged.items():
        assert torch.equal(sae.file_tensors()[name], value), name
    assert sae.cfg.normalization["method"] == "custom"


def test_fold_input_scale_refuses_bad_scales_and_a_second_fold() -> None:
    sae = make_sae("topk")
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="scale"):
            fold_input_scale(sae, bad)
    fold_input_scale(sae, 2.0)
    with pytest.raises(ConfigError, match="already"):
        fold_input_scale(sae, 2.0)
