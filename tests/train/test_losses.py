"""The training objective against a dense hand-written one: values and gradients, aux-k included."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from saescope.sae import SparseAutoencoder
from saescope.sae.gated import GatedSAE
from saescope.sae.matryoshka import MatryoshkaSAE
from saescope.train.losses import AuxK, SAEObjective
from tests.sae.builders import ARCHITECTURES, k_of, make_sae, sparse_dataset

AUX = AuxK(k=4, coefficient=0.5)
L1 = 0.3
HYPERPARAMS = {"relu": {"l1_coefficient": L1}, "jumprelu": {"l0_coefficient": 0.01}}


def naive_terms(
    sae: SparseAutoencoder, x: Tensor, dead: Tensor, num_dead: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(recon_loss, sparsity_loss, aux_loss) of a TopK or ReLU SAE with dense matrices only.

    aux-k (Gao et al. 2024, A.2): the min(aux_k, num_dead) largest pre-activations among latents that
    are dead now (never a live one) reconstruct the detached residual, normalised by its variance and
    scaled by min(num_dead / aux_k, 1).
    """
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if sae.architecture == "topk":
        top = pre.topk(sae.cfg.k or 0, dim=-1)
        codes = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        sparsity = pre.new_zeros(())
    else:
        codes = pre.relu()
        sparsity = L1 * (codes * sae.W_dec.norm(dim=1)).sum(-1).mean()
    recon = codes @ sae.W_dec + sae.b_dec
    recon_loss = (x - recon).pow(2).sum(-1).mean()
    k_aux = min(AUX.k, num_dead, int(dead.sum()))
    if k_aux == 0:
        return recon_loss, sparsity, pre.new_zeros(())
    residual = (x - recon).detach()
    top = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    aux_codes = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    total = (residual - residual.mean(0)).pow(2).sum()
    scale = min(num_dead / AUX.k, 1.0)
    aux = AUX.coefficient * scale * (aux_codes @ sae.W_dec - residual).pow(2).sum() / total
    return recon_loss, sparsity, aux


def grads(sae: SparseAutoencoder, loss: Tensor) -> dict[str, Tensor]:
    sae.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}


def setup(architecture: str, dead_ids: list[int]) -> tuple[SparseAutoencoder, Tensor, Tensor]:
    k = k_of(architecture)
    sae = make_sae(architecture, d_in=16, d_sae=48, k=k, **HYPERPARAMS.get(architecture, {}))
    x = sparse_dataset(64, d_in=16, seed=3) * 2
    dead = torch.zeros(48, dtype=torch.bool)
    dead[dead_ids] = True
    return sae, x, dead


@pytest.mark.parametrize("kernel", ["reference", "torch"])
@pytest.mark.parametrize("architecture", ["topk", "relu"])
@pytest.mark.parametrize(
    ("dead_ids", "num_dead"),
    [([], 0), (list(range(0, 48, 3)), 16), ([5, 7], 2), ([5, 7], 6)],
    ids=["none-dead", "many-dead", "few-dead", "stale-count"],
)
def test_objective_matches_dense_hand_computation(
    architecture: str, kernel: str, dead_ids: list[int], num_dead: int
) -> None:
    """`stale-count`: the host-side count (refreshed every few steps) says 6 dead, but latents revived
    since and only 2 are dead now: live latents must take no part in the aux-k loss."""
    sae, x, dead = setup(architecture, dead_ids)
    sae.kernel = kernel
    naive = copy.deepcopy(sae)
    out = SAEObjective(sae, AUX)(x, dead, num_dead)
    expected = naive_terms(naive, x, dead, num_dead)
    terms = out.terms
    for got, want in zip((terms.recon_loss, terms.sparsity_loss, terms.aux_loss), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    total = expected[0] + expected[1] + expected[2]
    torch.testing.assert_close(terms.loss, total, rtol=1e-5, atol=1e-6)
    assert (terms.aux_loss > 0) == bool(dead_ids)
    got_grads, want_grads = grads(sae, terms.loss), grads(naive, total)
    assert set(got_grads) == set(want_grads) == {"W_enc", "b_enc", "W_dec", "b_dec"}
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("kernel", ["reference", "torch"])
def test_aux_gradient_reaches_only_dead_latents(kernel: str) -> None:
    sae, x, dead = setup("topk", [1, 2, 40])
    sae.kernel = kernel
    aux = SAEObjective(sae, AUX)(x, dead, 9).terms.aux_loss  # stale count: 9 > 3 dead
    g = grads(sae, aux)
    touched_enc = g["W_enc"].abs().sum(0) > 0
    touched_dec = g["W_dec"].abs().sum(1) > 0
    assert touched_enc[dead].all() and not touched_enc[~dead].any()
    assert touched_dec[dead].all() and not touched_dec[~dead].any()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_kernels_agree_and_report_batch_fvu_and_l0(architecture: str) -> None:
    sae, x, dead = setup(architecture, [0, 3, 8, 9, 30])
    results = {}
    for kernel in ("reference", "torch"):
        twin = copy.deepcopy(sae)
        twin.kernel = kernel
        out = SAEObjective(twin, AUX)(x, dead, 5)
        results[kernel] = (out, grads(twin, out.terms.loss))
    (ref, ref_grads), (fast, fast_grads) = results["reference"], results["torch"]
    for a, b in zip(ref.terms, fast.terms):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    recon = ref.out.recon.detach()
    fvu = (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    torch.testing.assert_close(ref.terms.fvu, fvu)
    assert ref.terms.l0 == (ref.out.latent_acts > 0).sum(-1).float().mean()


def test_without_a_dead_mask_there_is_no_aux_loss() -> None:
    sae, x, _ = setup("topk", [])
    terms = SAEObjective(sae, AUX)(x).terms
    assert terms.aux_loss == 0 and terms.loss == terms.recon_loss


def naive_matryoshka_and_gated(sae: SparseAutoencoder, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(recon_loss, sparsity_loss, extra_loss) of a Matryoshka or gated SAE, densely:
    Matryoshka: the k·N largest of relu(pre) over the batch, each inner prefix decoded on its own;
    gated: 1[π_gate > 0]·ReLU(π_mag), the gate's L1 and its reconstruction through a frozen decoder."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if isinstance(sae, MatryoshkaSAE):
        flat = pre.relu().flatten()
        top = flat.topk(sae.k * x.shape[0])
        codes = torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(pre)
        inner = [
            (x - codes[:, :w] @ sae.W_dec[:w] - sae.b_dec).pow(2).sum(-1).mean()
            for w in sae.prefix_widths[:-1]
        ]
        sparsity, extra = pre.new_zeros(()), torch.stack(inner).sum()
    else:
        assert isinstance(sae, GatedSAE)
        codes = (pre > 0).float() * ((pre - sae.b_enc) * sae.r_mag.exp() + sae.b_mag).relu()
        gate = pre.relu()
        sparsity = L1 * (gate * sae.W_dec.norm(dim=1)).sum(-1).mean()
        extra = (x - gate @ sae.W_dec.detach() - sae.b_dec.detach()).pow(2).sum(-1).mean()
    recon = codes @ sae.W_dec + sae.b_dec
    return (x - recon).pow(2).sum(-1).mean(), sparsity, extra


@pytest.mark.parametrize("kernel", ["reference", "torch"])
@pytest.mark.parametrize("architecture", ["matryoshka", "gated"])
def test_the_objective_adds_the_architecture_s_own_terms(architecture: str, kernel: str) -> None:
    """The trainer's objective (aux-k on) gives a Matryoshka SAE its nested prefixes and a gated SAE
    its gate penalty and auxiliary reconstruction, in values and gradients, beside the aux-k loss."""
    hyperparams = {
        "matryoshka": {"matryoshka_groups": (0.25, 0.25, 0.5)},
        "gated": {"gate_l1_coefficient": L1},
    }
    sae = make_sae(architecture, d_in=16, d_sae=48, k=k_of(architecture), **hyperparams[architecture])
    x = sparse_dataset(64, d_in=16, seed=3) * 2
    dead = torch.zeros(48, dtype=torch.bool)
    dead[[0, 3, 8, 30]] = True
    naive = copy.deepcopy(sae)
    sae.kernel = kernel
    terms = SAEObjective(sae, AUX)(x, dead, 4).terms
    recon_loss, sparsity, extra = naive_matryoshka_and_gated(naive, x)
    assert float(extra.detach()) > 0 and (float(sparsity.detach()) > 0) == (architecture == "gated")
    for got, want in zip(
        (terms.recon_loss, terms.sparsity_loss, terms.extra_loss), (recon_loss, sparsity, extra)
    ):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert float(terms.aux_loss.detach()) > 0
    torch.testing.assert_close(
        terms.loss, terms.recon_loss + terms.sparsity_loss + terms.aux_loss + terms.extra_loss
    )
    # The aux-k term is the trainer's and is tested above; without it the gradients are the naive ones.
    got_grads = grads(sae, terms.loss - terms.aux_loss)
    want_grads = grads(naive, recon_loss + sparsity + extra)
    assert set(got_grads) == set(want_grads)
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("architecture", ["relu", "jumprelu", "gated"])
def test_the_sparsity_scale_multiplies_the_penalty_alone(architecture: str) -> None:
    """The trainer's warm-up factor scales the architecture's sparsity penalty, in the loss and its
    gradients, and no other term."""
    params = HYPERPARAMS.get(architecture, {"gate_l1_coefficient": L1})
    sae = make_sae(architecture, d_in=16, d_sae=48, k=k_of(architecture), **params)
    x = sparse_dataset(64, d_in=16, seed=3) * 2
    full = SAEObjective(sae)(x).terms
    quarter = SAEObjective(sae)(x, sparsity_scale=0.25).terms
    assert float(full.sparsity_loss.detach()) > 0
    torch.testing.assert_close(quarter.sparsity_loss, 0.25 * full.sparsity_loss)
    for name in ("recon_loss", "aux_loss", "extra_loss"):
        torch.testing.assert_close(getattr(quarter, name), getattr(full, name))
    torch.testing.assert_close(quarter.loss, full.loss - 0.75 * full.sparsity_loss)
    want = grads(sae, full.loss - 0.75 * full.sparsity_loss)
    got = grads(sae, quarter.loss)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
