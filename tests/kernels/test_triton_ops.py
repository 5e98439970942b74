"""The `triton` kernel implementation end to end: encode/decode autograd against the dense reference,
a whole TopK SAE training step, and the fallback to plain torch."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

pytest.importorskip("triton")

import saescope.kernels as kernels
from saescope.kernels import fallback, reference, triton_ops, triton_sparse
from saescope.kernels.fused_adam import FusedAdam
from saescope.sae import SAEConfig
from saescope.sae.init import initialize
from saescope.sae.topk import TopKSAE

from .triton_env import DEVICE


def encoder_params(d_in: int, d_sae: int) -> tuple[torch.Tensor, ...]:
    W_enc = (torch.randn(d_sae, d_in, device=DEVICE) / d_in**0.5).t()  # [d_in, d_sae], latent-major storage
    b_enc = 0.1 * torch.randn(d_sae, device=DEVICE)
    b_dec = 0.1 * torch.randn(d_in, device=DEVICE)
    return tuple(t.requires_grad_() for t in (W_enc, b_enc, b_dec))


def grads(*tensors: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in tensors:
        assert t.grad is not None
        out.append(t.grad)
        t.grad = None
    return out


@pytest.mark.parametrize(("rows", "d_in", "d_sae", "k"), [(12, 24, 50, 5), (5, 7, 19, 1)])
def test_sparse_encode_values_and_gradients_match_the_reference(
    rows: int, d_in: int, d_sae: int, k: int
) -> None:
    x = torch.randn(rows, d_in, device=DEVICE, requires_grad=True)
    W_enc, b_enc, b_dec = encoder_params(d_in, d_sae)
    ids = torch.rand(rows, d_sae, device=DEVICE).topk(k).indices  # the same selection on both paths
    upstream = torch.randn(rows, k, device=DEVICE)

    sel_ref, idx_ref, pre_ref = reference.sparse_encode(x, W_enc, b_enc, b_dec, lambda pre: ids)
    (sel_ref * upstream).sum().backward()
    expected = grads(x, W_enc, b_enc, b_dec)

    triton_sparse.clear_plan_cache()
    sel, idx, pre = triton_ops.sparse_encode(x, W_enc, b_enc, b_dec, lambda pre: ids)
    assert torch.equal(idx, idx_ref)
    torch.testing.assert_close(pre, pre_ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sel, sel_ref.detach(), rtol=1e-5, atol=1e-5)
    (sel * upstream).sum().backward()
    got = grads(x, W_enc, b_enc, b_dec)
    for name, g, e in zip(("x", "W_enc", "b_enc", "b_dec"), got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5, msg=f"gradient of {name}")
    assert got[1].stride() == W_enc.stride(), "W_enc's gradient must keep its latent-major layout"


def test_sparse_encode_without_input_gradient_skips_it() -> None:
    x = torch.randn(6, 9, device=DEVICE)
    W_enc, b_enc, b_dec = encoder_params(9, 30)
    sel, _, _ = triton_ops.sparse_encode(x, W_enc, b_enc, b_dec, lambda pre: pre.topk(3).indices)
    sel.sum().backward()
    assert x.grad is None and W_enc.grad is not None and b_dec.grad is not None


def test_sparse_encode_under_bf16_autocast() -> None:
    x = torch.randn(8, 16, device=DEVICE)
    W_enc, b_enc, b_dec = encoder_params(16, 40)
    ids = torch.rand(8, 40, device=DEVICE).topk(4).indices
    sel_ref, _, _ = reference.sparse_encode(x, W_enc, b_enc, b_dec, lambda pre: ids)
    sel_ref.sum().backward()
    expected = grads(W_enc, b_enc, b_dec)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        sel, _, pre = triton_ops.sparse_encode(x, W_enc, b_enc, b_dec, lambda pre: ids)
    assert pre.dtype == torch.bfloat16 and sel.dtype == torch.bfloat16
    torch.testing.assert_close(sel.float(), sel_ref.detach(), rtol=2e-2, atol=2e-2)
    sel.float().sum().backward()
    for g, e in zip(grads(W_enc, b_enc, b_dec), expected):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("acts_dtype", (torch.float32, torch.bfloat16))
def test_sparse_decode_values_and_gradients_match_the_reference(acts_dtype: torch.dtype) -> None:
    rows, k, n, d = 10, 4, 33, 21
    ids = torch.rand(rows, n, device=DEVICE).topk(k).indices
    acts = torch.rand(rows, k, device=DEVICE).to(acts_dtype).requires_grad_()
    W_dec = torch.randn(n, d, device=DEVICE, requires_grad=True)
    upstream = torch.randn(rows, d, device=DEVICE)
    (reference.sparse_decode(acts, ids, W_dec) * upstream).sum().backward()
    expected = grads(acts, W_dec)
    triton_sparse.clear_plan_cache()
    out = triton_ops.sparse_decode(acts, ids, W_dec)
    tol = 1e-5 if acts_dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out, reference.sparse_decode(acts, ids, W_dec).detach(), rtol=tol, atol=tol)
    (out * upstream).sum().backward()
    got = grads(acts, W_dec)
    assert got[0].dtype == acts_dtype
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.float(), e.float(), rtol=tol, atol=tol)


def test_sparse_decode_under_bf16_autocast() -> None:
    rows, k, n, d = 8, 3, 25, 17
    ids = torch.rand(rows, n, device=DEVICE).topk(k).indices
    acts = torch.rand(rows, k, device=DEVICE).to(torch.bfloat16).requires_grad_()
    W_dec = torch.randn(n, d, device=DEVICE, requires_grad=True)
    upstream = torch.randn(rows, d, device=DEVICE)
    (reference.sparse_decode(acts.float(), ids, W_dec) * upstream).sum().backward()
    expected = grads(acts, W_dec)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        out = triton_ops.sparse_decode(acts, ids, W_dec)
    assert out.dtype == torch.float32
    (out * upstream).sum().backward()
    got = grads(acts, W_dec)
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == torch.float32
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.float(), e.float(), rtol=2e-2, atol=2e-2)


def test_topk_entry_points() -> None:
    x = torch.randn(4, 70, device=DEVICE)
    ids = triton_ops.topk_indices(x, 6)
    torch.testing.assert_close(x.gather(1, ids).sort(1).values, x.topk(6).values.sort(1).values)
    mask = torch.rand(70, device=DEVICE) < 0.5
    ids = triton_ops.topk_indices_masked(x, 6, mask)
    expected = x.masked_fill(~mask, float("-inf")).topk(6).values
    torch.testing.assert_close(x.gather(1, ids).sort(1).values, expected.sort(1).values)


def make_topk_sae(d_in: int, d_sae: int, k: int, kernel: str) -> TopKSAE:
    sae = TopKSAE(SAEConfig(architecture="topk", d_in=d_in, d_sae=d_sae, k=k)).to(DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    initialize(sae, generator=gen, b_dec=0.1 * torch.randn(d_in, generator=gen, device=DEVICE))
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=gen, device=DEVICE))
    sae.kernel = kernel
    return sae


def test_topk_sae_training_steps_match_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward, MSE loss, backward, and FusedAdam with the unit-norm decoder (Triton) against the dense
    reference with torch.optim.Adam and the SAE's own projection / renormalisation helpers."""
    # On CPU the dispatcher would route `triton` to the torch path: send it to the kernels instead.
    monkeypatch.setattr(kernels, "resolve_impl", lambda impl, device: impl)
    ref = make_topk_sae(20, 48, 5, "reference")
    fast = copy.deepcopy(ref)
    fast.kernel = "triton"
    assert fast.W_enc.stride() == ref.W_enc.stride() == (1, 20)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=False)
    opt_fast = FusedAdam(fast.parameters(), lr=1e-2, decoder=fast.W_dec, impl="triton")
    for step in range(2):
        x = torch.randn(10, 20, device=DEVICE)
        out_ref, out_fast = ref(x), fast(x)
        assert torch.equal(out_fast.latent_indices.sort(1).values, out_ref.latent_indices.sort(1).values)
        torch.testing.assert_close(out_fast.recon, out_ref.recon, rtol=1e-5, atol=1e-5)
        (out_ref.recon - x).pow(2).sum(-1).mean().backward()
        (out_fast.recon - x).pow(2).sum(-1).mean().backward()
        for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
            assert p_fast.grad is not None and p_ref.grad is not None
            torch.testing.assert_close(
                p_fast.grad, p_ref.grad, rtol=1e-5, atol=1e-6, msg=f"step {step}: d{name}"
            )
            # Both optimizers get the same gradient: Adam's first steps move a weight by about ±lr
            # whatever its gradient's size, so rounding-level differences in near-zero gradients
            # (cuBLAS vs kernel summation order) would become lr-sized differences in the weights.
            p_fast.grad.copy_(p_ref.grad)
        ref.remove_gradient_parallel_to_decoder_directions()
        opt_ref.step()
        ref.set_decoder_norm_to_unit_norm()
        opt_fast.step()
        for (name, p_ref), p_fast in zip(ref.named_parameters(), fast.parameters()):
            torch.testing.assert_close(p_fast, p_ref, rtol=1e-5, atol=1e-6, msg=f"step {step}: {name}")
            # The next step compares gradients at identical weights: rounding-level differences in
            # the weights (FMA vs separate ops on a GPU) would otherwise grow into the gradients.
            with torch.no_grad():
                p_ref.copy_(p_fast)
        opt_ref.zero_grad()
        opt_fast.zero_grad()


def test_a_kernel_that_cannot_run_falls_back_to_torch_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SAESCOPE_TRITON_STRICT")
    calls = []

    def broken(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        raise RuntimeError("no kernel image is available for execution on the device\nmore detail")

    monkeypatch.setattr(triton_sparse, "gather_rows", broken)
    fallback.reset()
    try:
        ids = torch.tensor([[0, 2], [1, 2]], device=DEVICE)
        coef, W = torch.randn(2, 2, device=DEVICE), torch.randn(3, 5, device=DEVICE)
        expected = torch.nn.functional.embedding_bag(ids, W, per_sample_weights=coef, mode="sum")
        with caplog.at_level(logging.WARNING, logger="saescope.kernels.fallback"):
            for _ in range(2):
                torch.testing.assert_close(triton_ops._gather_rows(coef, ids, W, torch.float32), expected)
        assert len(calls) == 1, "a broken kernel is not retried"
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "gather_rows" in warnings[0] and "no kernel image" in warnings[0]
    finally:
        fallback.reset()


def test_a_kernel_that_ran_once_does_not_hide_later_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAESCOPE_TRITON_STRICT")
    fallback.reset()
    try:
        x = torch.randn(2, 10, device=DEVICE)
        triton_ops.topk_indices(x, 3)

        def broken(*args: object, **kwargs: object) -> torch.Tensor:
            raise RuntimeError("an error after the kernel worked")

        monkeypatch.setattr("saescope.kernels.triton_topk.topk_indices", broken)
        with pytest.raises(RuntimeError, match="after the kernel worked"):
            triton_ops.topk_indices(x, 3)
    finally:
        fallback.reset()
