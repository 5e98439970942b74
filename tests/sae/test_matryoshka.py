"""Matryoshka BatchTopK SAE: the nested-prefix loss against a naive loop, planted data whose first
group reconstructs alone, the inference threshold, kernels, learning, groups and bad settings."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from saescope.config.architectures import MATRYOSHKA_GROUPS, MatryoshkaParams
from saescope.errors import ConfigError
from saescope.sae import SAEConfig
from saescope.sae.matryoshka import MatryoshkaSAE

from .builders import (
    assert_kernels_agree,
    make_sae,
    parameter_grads,
    random_inputs,
    sparse_dataset,
    step_loss,
    train,
)

GROUPS = (0.125, 0.25, 0.625)
"""Prefixes of 6, 18 and 48 latents at 48 latents."""


def dense_batchtopk(sae: MatryoshkaSAE, x: Tensor) -> Tensor:
    """The k·N largest of relu(pre) over the flattened batch, as a dense [N, d_sae] matrix."""
    acts = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).relu()
    flat = acts.flatten()
    top = flat.topk(sae.k * x.shape[0])
    return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)


def naive_prefix_loss(sae: MatryoshkaSAE, x: Tensor, widths: list[int]) -> Tensor:
    """Σ over prefixes of ‖x − (codes[:, :w] @ W_dec[:w] + b_dec)‖², mean over rows: one dense
    decode per prefix, nothing shared between them."""
    codes = dense_batchtopk(sae, x)
    total = x.new_zeros(())
    for w in widths:
        recon = codes[:, :w] @ sae.W_dec[:w] + sae.b_dec
        total = total + (x - recon).pow(2).sum(-1).mean()
    return total


def test_prefix_widths_of_the_default_groups() -> None:
    assert MatryoshkaParams().matryoshka_groups == MATRYOSHKA_GROUPS
    assert MatryoshkaParams().prefix_widths(4608) == (144, 432, 1008, 2160, 4608)
    assert MatryoshkaParams(matryoshka_groups=GROUPS).prefix_widths(48) == (6, 18, 48)
    sae = make_sae(MatryoshkaSAE, d_sae=48, matryoshka_groups=GROUPS)
    assert sae.prefix_widths == (6, 18, 48)


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_loss_equals_a_naive_loop_over_prefixes_in_values_and_gradients(kernel: str) -> None:
    sae = make_sae(MatryoshkaSAE, d_sae=48, k=3, matryoshka_groups=GROUPS, kernel=kernel).train()
    x = random_inputs(24, sae.d_in)
    naive = naive_prefix_loss(sae, x, [6, 18, 48])
    naive.backward()
    oracle = parameter_grads(sae)
    sae.zero_grad()
    out = sae(x)
    inner = sae.prefix_losses(x, out)
    assert inner.shape == (2,) and bool((inner > 0).all())
    loss = step_loss(sae, x)
    torch.testing.assert_close(loss, naive.detach(), rtol=1e-6, atol=1e-6)
    loss.backward()
    for name, p in sae.named_parameters():
        torch.testing.assert_close(p.grad, oracle[name], rtol=1e-5, atol=1e-6, msg=name)
    # The inner prefixes are the extra term; the last prefix is the SAE's reconstruction.
    own = sae.architecture_loss(x, out.pre_acts.gather(-1, out.latent_indices), out)
    torch.testing.assert_close(own.extra_loss, inner.sum())
    assert float(own.sparsity_loss) == 0.0


def planted(seed: int = 0) -> tuple[MatryoshkaSAE, Tensor]:
    """Data built from 8 orthonormal directions (2 active per row, positive codes), and an SAE of 64
    latents whose first group (8 latents) holds exactly those directions, the others never firing."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(16, 8, generator=gen)).Q.t()  # [8, 16], orthonormal rows
    ids = torch.rand(512, 8, generator=gen).topk(2, dim=1).indices
    codes = torch.zeros(512, 8).scatter_(1, ids, 0.5 + torch.rand(512, 2, generator=gen))
    x = codes @ directions
    sae = MatryoshkaSAE(
        SAEConfig(
            architecture="matryoshka",
            d_in=16,
            d_sae=64,
            k=2,
            hyperparams={"matryoshka_groups": (1 / 8, 7 / 8)},
        )
    )
    others = torch.randn(56, 16, generator=gen)
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([directions, others / others.norm(dim=1, keepdim=True)]))
        sae.W_enc.copy_(sae.W_dec.t())
        sae.b_enc.copy_(torch.cat([torch.zeros(8), torch.full((56,), -10.0)]))
    return sae.train(), x


def shuffled(sae: MatryoshkaSAE, order: Tensor) -> MatryoshkaSAE:
    """The same SAE with its latents in another order (the same dictionary, other groups)."""
    other = MatryoshkaSAE(sae.cfg)
    with torch.no_grad():
        other.W_dec.copy_(sae.W_dec[order])
        other.W_enc.copy_(sae.W_enc[:, order])
        other.b_enc.copy_(sae.b_enc[order])
        other.b_dec.copy_(sae.b_dec)
    return other.train()


def test_a_first_group_that_reconstructs_planted_data_has_a_lower_prefix_loss_than_a_shuffled_one() -> None:
    sae, x = planted()
    out = sae(x)
    assert int((out.latent_acts > 0).sum()) == 2 * len(x)
    assert bool((out.latent_indices.gather(1, out.latent_acts.argmax(1, keepdim=True)) < 8).all())
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    assert int((order[:8] < 8).sum()) <= 2, (
        "the shuffle should move most planted latents out of the first group"
    )
    other = shuffled(sae, order)
    other_out = other(x)
    # One dictionary: the full reconstructions are the same (perfect here) ...
    torch.testing.assert_close(other_out.recon, out.recon, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.recon, x, rtol=1e-5, atol=1e-5)
    # ... but only the planted order reconstructs from its first group alone.
    ours, theirs = sae.prefix_losses(x, out).detach(), other.prefix_losses(x, other_out).detach()
    assert float(ours[0]) < 1e-8 < 0.5 * float(x.pow(2).sum(-1).mean()) < float(theirs[0])
    assert float(step_loss(sae, x).detach()) < float(step_loss(other, x).detach())


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reference_and_torch_kernels_agree(mode: str) -> None:
    sae = make_sae(MatryoshkaSAE, d_sae=48, k=4, matryoshka_groups=GROUPS)
    with torch.no_grad():
        sae.threshold.fill_(0.3)
    sae.train(mode == "train")
    x = random_inputs(24, sae.d_in)
    ref, fast = assert_kernels_agree(sae, x)
    assert torch.equal(fast.latent_indices, ref.latent_indices)


def test_inference_is_a_jumprelu_with_the_learnt_threshold() -> None:
    sae = make_sae(MatryoshkaSAE, d_sae=48, k=4, matryoshka_groups=GROUPS)
    with torch.no_grad():
        sae.threshold.fill_(0.25)
    sae.eval()
    x = random_inputs(40, sae.d_in)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    expected = pre * (pre > 0.25)
    torch.testing.assert_close(sae.encode_dense(x), expected.detach())
    torch.testing.assert_close(
        sae(x).recon, (expected @ sae.W_dec + sae.b_dec).detach(), rtol=1e-5, atol=1e-5
    )


def test_learns_a_sparse_dictionary_and_a_threshold_giving_about_k_latents() -> None:
    data = sparse_dataset(4096)
    sae = make_sae(MatryoshkaSAE, d_in=16, d_sae=64, k=3, matryoshka_groups=(0.25, 0.75))
    result = train(sae, data, steps=200)
    assert result.fvu_end < 0.3, result
    assert result.fvu_end < 0.4 * result.fvu_start, result
    assert 1.5 <= result.l0_end <= 6.0, result
    assert float(sae.threshold[0]) > 0


@pytest.mark.parametrize(
    ("groups", "d_sae", "match"),
    [
        ((0.5, 0.6), 32, "must sum to 1"),
        ((0.5, -0.5, 1.0), 32, "must be positive shares"),
        ((), 32, "must be positive shares"),
        ((0.01, 0.99), 32, r"gives a group no latents at 32 latents \(group sizes \[0, 32\]\)"),
    ],
)
def test_absurd_groups_raise_config_error_naming_the_option(
    groups: tuple[float, ...], d_sae: int, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        MatryoshkaSAE(
            SAEConfig(
                architecture="matryoshka", d_in=4, d_sae=d_sae, k=2, hyperparams={"matryoshka_groups": groups}
            )
        )
    assert "--matryoshka-groups" in str(info.value)


def test_groups_read_from_a_file_as_a_list_are_the_same_setting() -> None:
    listed = MatryoshkaParams.from_dict({"matryoshka_groups": [0.25, 0.75]}, "matryoshka")
    assert listed == MatryoshkaParams(matryoshka_groups=(0.25, 0.75))
    assert listed.to_dict() == {"batchtopk_threshold_momentum": 0.01, "matryoshka_groups": [0.25, 0.75]}
