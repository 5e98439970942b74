"""The architectures and files on a CUDA device (skipped without one): every kernel path agrees with
the dense reference in values and gradients, bf16 autocast steps stay finite, files round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from saescope.sae import SparseAutoencoder
from saescope.sae.batchtopk import BatchTopKSAE
from saescope.sae.formats import load_sae, save_sae
from saescope.sae.init import fold_input_scale, geometric_median, initialize
from saescope.sae.jumprelu import JumpReLUSAE

from .builders import ARCHITECTURES, gradients, k_of, make_sae, random_inputs, step_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

HYPERPARAMS: dict[str, dict[str, Any]] = {
    "relu": {"l1_coefficient": 0.1},
    "jumprelu": {"l0_coefficient": 0.1, "jumprelu_bandwidth": 0.1, "jumprelu_init_threshold": 0.2},
}


def cuda_sae(architecture: str, d_in: int = 64, d_sae: int = 512) -> SparseAutoencoder:
    kwargs = HYPERPARAMS.get(architecture, {})
    sae = make_sae(architecture, d_in=d_in, d_sae=d_sae, k=k_of(architecture, 16), **kwargs)
    if isinstance(sae, BatchTopKSAE):
        with torch.no_grad():
            sae.threshold.fill_(0.3)
    return sae.cuda()


@pytest.mark.parametrize("impl", ["torch", "triton"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_kernel_paths_agree_with_reference_on_cuda(architecture: str, mode: str, impl: str) -> None:
    sae = cuda_sae(architecture)
    sae.train(mode == "train")
    x = random_inputs(256, sae.d_in).cuda()
    sae.kernel = "reference"
    ref = sae(x)
    sae.kernel = impl
    fast = sae(x)
    torch.testing.assert_close(fast.recon, ref.recon, rtol=1e-4, atol=1e-4)
    ref_grads = gradients(sae, x, "reference")
    fast_grads = gradients(sae, x, impl)
    assert set(fast_grads) == set(ref_grads)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_bf16_autocast_training_steps_are_finite(architecture: str) -> None:
    sae = cuda_sae(architecture).train()
    sae.kernel = "triton"
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    x = random_inputs(512, sae.d_in).cuda()
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_loss(sae, x)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in sae.parameters() if p.grad is not None)
        opt.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_files_round_trip_from_and_to_cuda(tmp_path: Path, architecture: str) -> None:
    sae = cuda_sae(architecture).eval()
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae", device="cuda")
    assert loaded.W_enc.is_cuda and loaded.W_enc.t().is_contiguous()
    x = random_inputs(64, sae.d_in).cuda()
    assert torch.equal(loaded(x).recon, sae(x).recon)


def test_init_and_fold_on_cuda() -> None:
    sae = cuda_sae("jumprelu")
    assert isinstance(sae, JumpReLUSAE)
    cpu = make_sae("jumprelu", d_in=64, d_sae=512, k=None, **HYPERPARAMS["jumprelu"])
    initialize(sae, generator=torch.Generator().manual_seed(4))
    initialize(cpu, generator=torch.Generator().manual_seed(4))
    assert torch.equal(sae.W_dec.cpu(), cpu.W_dec)
    sae.eval()
    x = random_inputs(64, sae.d_in).cuda()
    before = sae(x * 0.5)
    fold_input_scale(sae, 0.5)
    assert torch.equal(sae(x).latent_acts, before.latent_acts)
    data = random_inputs(2000, 16)
    torch.testing.assert_close(
        geometric_median(data.cuda()).cpu(), geometric_median(data), rtol=1e-4, atol=1e-4
    )
