"""Dead-latent tracking: which latents fired, for how many tokens each has been silent."""

from __future__ import annotations

import pytest
import torch

from saescope.train.dead import DeadLatentTracker


def step(
    tracker: DeadLatentTracker, fired: list[int], tokens: int = 100, padding: tuple[int, ...] = ()
) -> None:
    """One batch in which latents `fired` have a positive activation and `padding` slots hold value 0."""
    ids = torch.tensor([fired + list(padding)])
    acts = torch.tensor([[1.0] * len(fired) + [0.0] * len(padding)])
    tracker.update(ids, acts, tokens)


def test_counts_tokens_since_each_latent_last_fired() -> None:
    tracker = DeadLatentTracker(6, dead_tokens=250, device=torch.device("cpu"))
    assert tracker.count_dead() == 0 and tracker.dead_fraction() == 0.0
    step(tracker, [0, 1], padding=(5,))  # a padding slot (value 0) is not a firing
    step(tracker, [1, 2])
    step(tracker, [2])
    assert tracker.tokens_since_fired.tolist() == [200, 100, 0, 300, 300, 300]
    assert tracker.dead_mask.tolist() == [False, False, False, True, True, True]
    assert tracker.count_dead() == 3 and tracker.tokens_seen == 300
    step(tracker, [3, 4])
    assert tracker.dead_mask.tolist() == [True, False, False, False, False, True]
    assert tracker.dead_fraction() == pytest.approx(2 / 6)


def test_dead_fraction_before_dead_tokens_counts_latents_silent_all_along() -> None:
    tracker = DeadLatentTracker(4, dead_tokens=10_000, device=torch.device("cpu"))
    step(tracker, [0, 1])
    step(tracker, [0])
    # 200 tokens seen, far below dead_tokens: none is dead, but 2 of 4 never fired
    assert tracker.count_dead() == 0
    assert tracker.dead_fraction() == 0.5
    assert tracker.dead_fraction(window=100) == 0.75  # latent 1 silent for the last 100 tokens too


def test_state_round_trip() -> None:
    tracker = DeadLatentTracker(5, dead_tokens=150, device=torch.device("cpu"))
    step(tracker, [0, 3], tokens=70)
    step(tracker, [3], tokens=90)
    other = DeadLatentTracker(5, dead_tokens=150, device=torch.device("cpu"))
    other.load_state_dict(tracker.state_dict())
    assert torch.equal(other.tokens_since_fired, tracker.tokens_since_fired)
    assert other.tokens_seen == 160 and torch.equal(other.dead_mask, tracker.dead_mask)
    # the state is a copy: updating one tracker leaves the saved state alone
    saved = tracker.state_dict()
    step(tracker, [1])
    assert saved["tokens_since_fired"].tolist() == [90, 160, 160, 0, 160]
