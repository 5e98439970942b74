"""Latent matching: an SAE matches itself at cosine 1, a permuted copy's permutation is recovered
(exact Hungarian and the candidate graph alike), and the candidate graph finds the same optimum as
the exact assignment on unrelated SAEs."""

from __future__ import annotations

import pytest
import torch

from saescope.compare.matching import ColumnTop, cosine_histogram, match_decoders, unit_rows

from .builders import unit_directions


@pytest.mark.parametrize("dense_limit", [10**9, 1], ids=["hungarian", "candidates"])
def test_an_sae_compared_with_itself_matches_every_latent_at_cosine_one(dense_limit: int) -> None:
    w = unit_directions(300, 48, 0) * torch.linspace(0.2, 3.0, 300)[:, None]  # norms do not matter
    m = match_decoders(w, w, dense_limit=dense_limit)
    assert m.assignment.method == ("hungarian" if dense_limit > 1 else "candidates")
    assert torch.equal(m.assignment.latent_a, m.assignment.latent_b)
    assert torch.allclose(m.assignment.cosine, torch.ones(300), atol=1e-5)
    assert torch.equal(m.a_to_b.latent, torch.arange(300))
    assert m.shared == {0.5: 1.0, 0.7: 1.0, 0.9: 1.0}
    assert m.histogram.counts[-1] == 300 and sum(m.histogram.counts) == 300


@pytest.mark.parametrize("dense_limit", [10**9, 1], ids=["hungarian", "candidates"])
def test_the_assignment_recovers_a_permutation(dense_limit: int) -> None:
    w = unit_directions(400, 32, 1)
    order = torch.randperm(400, generator=torch.Generator().manual_seed(5))
    noisy = w[order] + 0.05 * unit_directions(400, 32, 2)
    m = match_decoders(w, noisy, dense_limit=dense_limit)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(400)
    assert torch.equal(m.assignment.latent_b, inverse[m.assignment.latent_a])
    assert torch.equal(m.b_to_a.latent, order)
    assert m.assignment.fallback_pairs == 0


def test_the_candidate_graph_finds_the_exact_optimum_on_unrelated_saes() -> None:
    a, b = unit_directions(200, 16, 3), unit_directions(260, 16, 4)
    exact = match_decoders(a, b)
    sparse = match_decoders(a, b, dense_limit=1, candidates=8)
    assert exact.assignment.method == "hungarian" and sparse.assignment.method == "candidates"
    assert sparse.assignment.total == pytest.approx(exact.assignment.total, abs=1e-3)
    assert len(sparse.assignment.cosine) == 200  # every latent of the smaller SAE assigned once
    assert len(set(sparse.assignment.latent_b.tolist())) == 200
    assert exact.assignment.total <= exact.assignment.upper_bound + 1e-4
    # unrelated directions in 16 dimensions: few pairs are close (the fraction can come out low)
    assert exact.shared[0.9] < 0.05


def test_column_candidates_over_blocks_equal_a_topk_of_the_whole_matrix() -> None:
    matrix = torch.randn(70, 50, generator=torch.Generator().manual_seed(6))
    top = ColumnTop(50, 4)
    for start in range(0, 70, 16):
        top.add(matrix[start : start + 16], start)
    reference = matrix.topk(4, dim=0)
    assert top.values is not None
    assert torch.equal(top.rows, reference.indices.T)
    assert torch.equal(top.values, reference.values.T)


def test_the_histogram_counts_every_cosine_once() -> None:
    h = cosine_histogram(torch.tensor([-0.5, 0.0, 0.04, 0.5, 0.97, 1.0]), bins=10)
    assert h.below_zero == 1 and sum(h.counts) == 5
    assert h.counts[0] == 2 and h.counts[5] == 1 and h.counts[-1] == 2


def test_unit_rows_leave_a_zero_row_zero() -> None:
    rows = unit_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(rows, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_a_screen_on_random_directions_keeps_every_partner_above_half_and_exact_cosines() -> None:
    a = unit_directions(600, 512, 7)
    fresh = unit_directions(600, 512, 8)
    b = torch.cat([a[:300] + 1.0 * fresh[:300], fresh[300:]])  # the first 300 at cosine ≈ 0.7
    exact = match_decoders(a, b)  # the dense matrix: the true best matches
    screened = match_decoders(a, b, dense_limit=1, screen_dims=64)
    assert screened.screened_on == 64 and exact.screened_on == 0
    strong = exact.a_to_b.cosine >= 0.5
    assert int(strong.sum()) == 300
    assert torch.equal(screened.a_to_b.latent[strong], exact.a_to_b.latent[strong])
    assert torch.equal(screened.assignment.latent_b[:300], torch.arange(300))
    # every cosine reported is the exact one of the pair it names, whichever partner was kept
    rows = unit_rows(a) @ unit_rows(b).T
    assert torch.allclose(screened.a_to_b.cosine, rows[torch.arange(600), screened.a_to_b.latent], atol=1e-5)
    assert screened.shared == exact.shared
    full_width = match_decoders(a, b, dense_limit=1, screen_dims=0)
    assert full_width.screened_on == 0 and torch.equal(full_width.a_to_b.latent, exact.a_to_b.latent)


def test_latents_left_without_a_candidate_partner_never_break_a_planted_pair() -> None:
    # half of A has a partner in B at cosine ≈ 0.9, the other half none: with one candidate each,
    # many unrelated latents compete for the same few partners and are paired afterwards
    a, fresh = unit_directions(1000, 256, 11), unit_directions(1000, 256, 12)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(13))
    b = torch.cat([a[:500] + 0.48 * fresh[:500], fresh[500:]])[order]
    m = match_decoders(a, b, candidates=1, dense_limit=1)
    where = torch.empty_like(order)
    where[order] = torch.arange(1000)
    assert torch.equal(m.assignment.latent_b[:500], where[:500])  # every planted pair kept
    assert m.assignment.fallback_pairs > 0  # and some latents had to be paired afterwards
    assert sorted(m.assignment.latent_b.tolist()) == list(range(1000))  # one to one
    rows = unit_rows(a) @ unit_rows(b).T
    assert torch.allclose(m.assignment.cosine, rows[m.assignment.latent_a, m.assignment.latent_b], atol=1e-5)
