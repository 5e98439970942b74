"""`Index.*_many` (each table read once for many latents) answer exactly what the per-latent
queries answer, whatever the latents asked, their order and the sizes asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from saescope.index import LatentIndexError
from saescope.index.reader import Index

D_SAE = 48
ASKED = [47, 3, 9, 3, 16, 0, 40, 41, 8, 23]
"""Out of order, with a repeat, across six of the index's buckets of 8 latents (and their edges)."""


@pytest.fixture(scope="module")
def pair(built: Path) -> tuple[Index, Index]:
    """Two instances, so that no cache of one answers for the other."""
    return Index(built), Index(built)


def test_bulk_answers_equal_the_per_latent_answers(pair: tuple[Index, Index]) -> None:
    bulk, single = pair
    for n in (0, 1, 7, 150):  # 150: beyond what top.parquet keeps, from the postings
        top = bulk.top_examples_many(ASKED, n, 5, 2)
        assert list(top) == list(dict.fromkeys(ASKED))
        for latent in ASKED:
            assert top[latent] == single.top_examples(latent, n, 5, 2), (latent, n)
    for latent, groups in bulk.quantile_examples_many(ASKED, 4, 3, 7, 3, 1).items():
        assert groups == single.quantile_examples(latent, 4, 3, 7, 3, 1), latent
    for n in (1, 5, 100):
        co, near = bulk.cooccurring_many(ASKED, n), bulk.neighbours_many(ASKED, n)
        by_lift = bulk.cooccurring_many(ASKED, n, by="lift")
        logits = bulk.logit_effects_many(ASKED, n)
        for latent in ASKED:
            assert co[latent] == single.cooccurring(latent, n), (latent, n)
            assert by_lift[latent] == single.cooccurring(latent, n, by="lift"), (latent, n)
            assert near[latent] == single.neighbours(latent, n), (latent, n)
            assert logits[latent] == single.logit_effects(latent, n), (latent, n)


def test_bulk_answers_are_not_empty_where_the_latents_fire(pair: tuple[Index, Index]) -> None:
    bulk, _ = pair
    counts = bulk.stats().column("count").to_pylist()
    every = list(range(D_SAE))
    top = bulk.top_examples_many(every, 3)
    assert [len(top[k]) for k in every] == [min(3, c) for c in counts]
    assert all(len(v) == min(5, D_SAE - 1) for v in bulk.neighbours_many(every, 5).values())
    groups = bulk.quantile_examples_many(every, 2, 1)
    assert [len(groups[k]) for k in every] == [min(2, c) for c in counts]


def test_bulk_refuses_a_latent_out_of_range(pair: tuple[Index, Index]) -> None:
    bulk, _ = pair
    for ask in (bulk.top_examples_many, bulk.cooccurring_many, bulk.neighbours_many):
        with pytest.raises(LatentIndexError, match=f"latent {D_SAE} is out of range"):
            ask([1, D_SAE])
