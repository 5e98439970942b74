"""The sparse plain-torch path (the CPU fast path) against the dense reference, both branches.

`torch_sparse` switches to dense products when a batch has many active latents per row
(`DENSE_RATIO`); these tests force each branch and compare values and every gradient.
"""

from __future__ import annotations

import pytest
import torch

from saescope.kernels import reference, torch_sparse


def _inputs(n: int, d: int, d_sae: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float32)
    W_enc = torch.randn(d_sae, d, generator=g, dtype=torch.float32).t()  # latent-major, as the SAE stores it
    b_enc = torch.randn(d_sae, generator=g, dtype=torch.float32)
    b_dec = torch.randn(d, generator=g, dtype=torch.float32)
    W_dec = torch.randn(d_sae, d, generator=g, dtype=torch.float32)
    return x, W_enc, b_enc, b_dec, W_dec


def _select(k: int, k_aux: int):
    """Top-k ids plus k_aux more among the first half of the latents: ids may repeat in a row,
    as they do when the aux-k loss adds dead latents to the main ones."""

    def select(pre: torch.Tensor) -> torch.Tensor:
        main = pre.topk(k, dim=-1).indices
        half = pre.shape[1] // 2
        aux = pre[:, :half].topk(k_aux, dim=-1).indices
        return torch.cat([main, aux], dim=-1)

    return select


def _step(impl, x, W_enc, b_enc, b_dec, W_dec, select, k):
    params = [t.detach().clone().requires_grad_(True) for t in (x, W_enc, b_enc, b_dec, W_dec)]
    x_, W_enc_, b_enc_, b_dec_, W_dec_ = params
    selected, idx, _ = impl.sparse_encode(x_, W_enc_, b_enc_, b_dec_, select)
    # Decode the main slots (unique ids per row, as the trainer does); the extra slots, which may
    # repeat ids, still send a gradient through the encoder.
    recon = impl.sparse_decode(selected[:, :k].relu(), idx[:, :k], W_dec_) + b_dec_
    loss = (recon - x_.detach() * 0.5).pow(2).sum() + (selected[:, k:] * 0.3).sum()
    loss.backward()
    return recon.detach(), idx, [p.grad for p in params]


@pytest.mark.parametrize("ratio", [1, 10**6], ids=["sparse-branch", "dense-branch"])
@pytest.mark.parametrize(
    ("n", "d", "d_sae", "k", "k_aux"), [(7, 5, 48, 3, 0), (9, 6, 40, 4, 5), (4, 3, 16, 1, 2)]
)
def test_torch_sparse_matches_the_dense_reference(monkeypatch, ratio, n, d, d_sae, k, k_aux) -> None:
    monkeypatch.setattr(torch_sparse, "DENSE_RATIO", ratio)
    assert torch_sparse.dense_is_cheaper(k + k_aux, d_sae) == (ratio > 1)
    inputs = _inputs(n, d, d_sae, seed=n * 100 + d_sae)
    select = _select(k, k_aux)
    ref_recon, ref_idx, ref_grads = _step(reference, *inputs, select, k)
    recon, idx, grads = _step(torch_sparse, *inputs, select, k)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(recon, ref_recon, rtol=1e-5, atol=1e-4)
    for name, got, want in zip(("x", "W_enc", "b_enc", "b_dec", "W_dec"), grads, ref_grads):
        assert got is not None and want is not None, name
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3, msg=name)
    # The W_enc gradient keeps W_enc's latent-major layout.
    assert grads[1].stride() == inputs[1].stride()
