"""Learning-rate schedule: warm-up, then constant / cosine / linear decay ending at the floor."""

from __future__ import annotations

import itertools
import math

import pytest

from saescope.train.schedule import default_peak_lr, learning_rate


def lrs(
    schedule: str, total: int = 50, warmup: int = 10, peak: float = 2.0, ratio: float = 0.25
) -> list[float]:
    return [
        learning_rate(
            s, peak=peak, total_steps=total, warmup_steps=warmup, schedule=schedule, min_ratio=ratio
        )
        for s in range(total + 1)
    ]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_warmup_rises_linearly_to_the_peak(schedule: str) -> None:
    got = lrs(schedule)
    assert got[:10] == pytest.approx([2.0 * (s + 1) / 10 for s in range(10)])
    assert got[10] == pytest.approx(2.0)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_falls_monotonically_to_the_floor(schedule: str) -> None:
    got = lrs(schedule)
    decay = got[10:]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert decay[-1] == pytest.approx(0.5)  # peak x min_ratio at the end of the budget
    assert decay[-2] > 0.5
    middle = got[30]  # half-way through the decay
    expected = 0.5 + 1.5 * (0.5 * (1 + math.cos(math.pi * 0.5)) if schedule == "cosine" else 0.5)
    assert middle == pytest.approx(expected)


def test_constant_stays_at_peak_and_no_warmup_starts_there() -> None:
    assert lrs("constant")[10:] == pytest.approx([2.0] * 41)
    assert lrs("cosine", warmup=0)[0] == pytest.approx(2.0)
    # a budget no longer than the warm-up never decays
    assert lrs("cosine", total=5, warmup=10)[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(20, peak=1.0, total_steps=50, warmup_steps=10, schedule="exp", min_ratio=0.1)


def test_default_peak_lr_follows_the_inverse_square_root_of_the_width() -> None:
    assert default_peak_lr(2**14) == pytest.approx(2e-4)
    assert default_peak_lr(4 * 2**14) == pytest.approx(1e-4)
