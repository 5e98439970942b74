"""`saescope contrast` against statistics computed by hand, one text at a time; the density
filter; and positions (last, all, substring)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

from saescope.bound import BoundSAE
from saescope.errors import SaescopeError
from saescope.hooks import collect_activations
from saescope.steer.contrast import contrast_latents
from saescope.steer.frequencies import FiringStats
from saescope.steer.texts import Text

POSITIVE = ["The cat is on the mat", "a cat sat on a hat", "the cat, the cat", "Is the cat on it?", "cat"]
NEGATIVE = ["Paris is far from here", "1 2 3 4", "It is Paris", "er er er", "on and on and on"]


def dense_at(bound: BoundSAE, text: str, mode: str) -> Tensor:
    """Dense latents [positions, d_sae] of one text at its last token or all tokens but BOS."""
    tok = bound.loaded_model.tokenizer
    ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad(), collect_activations(bound.loaded_model.model, [bound.hookpoint]) as collector:
        act = collector.run(input_ids=ids)[bound.hookpoint.name][0]
        return bound.sae.encode_dense(act[-1:] if mode == "last" else act[1:]).double()


def stats(d_sae: int, dense: tuple[int, ...] = ()) -> FiringStats:
    freq = torch.full((d_sae,), 0.01, dtype=torch.float64)
    freq[list(dense)] = 0.5
    return FiringStats(freq, None, "made up for the test")


@pytest.mark.parametrize("mode", ["last", "all"])
def test_scores_match_a_hand_computation(bound: BoundSAE, mode: str) -> None:
    result = contrast_latents(bound, POSITIVE, NEGATIVE, mode, stats=stats(64), max_density=1.0, top=64)
    pos = torch.cat([dense_at(bound, t, mode) for t in POSITIVE])
    neg = torch.cat([dense_at(bound, t, mode) for t in NEGATIVE])
    assert (result.positive_positions, result.negative_positions) == (len(pos), len(neg))
    separation = (pos > 0).double().mean(0) - (neg > 0).double().mean(0)
    difference = pos.mean(0) - neg.mean(0)
    se = (pos.var(0) / len(pos) + neg.var(0) / len(neg)).sqrt()
    listed = result.positive + result.negative
    assert len(listed) > 5
    for row in listed:
        i = row.latent
        assert row.separation == pytest.approx(float(separation[i]), abs=1e-12)
        assert row.mean_difference == pytest.approx(float(difference[i]), abs=1e-6)
        expected_t = float(difference[i] / se[i]) if se[i] > 0 else 0.0
        assert row.t == pytest.approx(expected_t, rel=1e-4, abs=1e-6)
    assert {r.latent for r in result.positive} == {i for i in range(64) if separation[i] > 0}
    assert {r.latent for r in result.negative} == {i for i in range(64) if separation[i] < 0}
    assert [r.separation for r in result.positive] == sorted(
        (r.separation for r in result.positive), reverse=True
    )
    assert all(r.separation < 0 for r in result.negative)


def test_dense_latents_are_left_out(bound: BoundSAE) -> None:
    everything = contrast_latents(bound, POSITIVE, NEGATIVE, "all", stats=stats(64), top=64)
    best = everything.positive[0].latent
    filtered = contrast_latents(
        bound, POSITIVE, NEGATIVE, "all", stats=stats(64, (best, 1)), max_density=0.1, top=64
    )
    assert filtered.excluded == 2 and best not in {r.latent for r in filtered.positive + filtered.negative}
    doc = json.loads(json.dumps(filtered.to_json()))
    assert doc["density_source"] == "made up for the test" and doc["positive"][0]["latent"] != best


def test_substring_positions_read_the_last_token_of_each_occurrence(bound: BoundSAE) -> None:
    positive = [Text("Paris and Paris again"), Text("a cat", substring="cat")]
    result = contrast_latents(bound, positive, ["Paris is here"], "substring", "Paris", stats(64), 1.0, 64)
    assert result.positive_positions == 3 and result.negative_positions == 1 and result.skipped == 0
    skipping = contrast_latents(bound, ["no such thing", "Paris"], ["Paris"], "substring", "Paris", stats(64))
    assert skipping.skipped == 1
    with pytest.raises(SaescopeError, match="no negative text has a position"):
        contrast_latents(bound, ["Paris"], ["nothing"], "substring", "Paris", stats(64))
