"""Learning-rate schedule: warm-up, then constant / cosine / linear decay ending at the floor; the
sparsity penalty's warm-up."""

from __future__ import annotations

import itertools
import math

import pytest

from saescope.train.schedule import (
    STEPS_EXPONENT,
    STEPS_LR,
    default_peak_lr,
    default_warmup_steps,
    learning_rate,
    long_run_lr,
    sparsity_scale,
    sparsity_warmup_steps,
)


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


def test_the_long_run_rule_follows_the_inverse_square_root_of_the_width() -> None:
    assert long_run_lr(2**14) == pytest.approx(2e-4)
    assert long_run_lr(4 * 2**14) == pytest.approx(1e-4)


def test_default_peak_lr_matches_the_measured_best_rates() -> None:
    # the sweeps the rule was fitted on (schedule.py): 4,608 latents, k 32, batch 4096
    assert default_peak_lr(4608, 73) == pytest.approx(4.2e-3, rel=0.01)
    assert default_peak_lr(4608, 732) == pytest.approx(2.7e-3, rel=0.02)
    # no width effect was measured from 1,152 to 18,432 latents
    assert default_peak_lr(1152, 73) == default_peak_lr(4608, 73) == default_peak_lr(18432, 73)
    assert default_peak_lr(2**16, 10**6) == pytest.approx(3.4e-4, rel=0.02)  # Gao et al.: 1e-4


def test_default_peak_lr_falls_with_steps_and_with_width_above_the_measured_ones() -> None:
    steps = sorted({round(1.1**i) for i in range(150)})
    rates = [default_peak_lr(4608, s) for s in steps]
    assert all(a > b for a, b in itertools.pairwise(rates))
    for s in (10, 1000, 10**6):
        assert default_peak_lr(4 * 18432, s) == pytest.approx(default_peak_lr(18432, s) / 2)
        assert default_peak_lr(16 * 18432, s) == pytest.approx(default_peak_lr(18432, s) / 4)
        assert (
            default_peak_lr(64, s) == default_peak_lr(4608, s) == pytest.approx(STEPS_LR * s**-STEPS_EXPONENT)
        )


@pytest.mark.parametrize(
    ("steps", "warmup"), [(1, 1), (10, 1), (73, 4), (732, 37), (20_000, 1000), (10**7, 1000)]
)
def test_default_warmup_is_five_percent_of_the_steps_capped(steps: int, warmup: int) -> None:
    assert default_warmup_steps(steps) == warmup
    assert default_warmup_steps(steps) <= steps


def test_the_sparsity_penalty_rises_linearly_from_zero_over_the_first_steps() -> None:
    warmup = sparsity_warmup_steps(100)
    assert warmup == 35
    got = [sparsity_scale(s, warmup) for s in range(50)]
    assert got[:35] == pytest.approx([(s + 1) / 35 for s in range(35)])
    assert got[35:] == [1.0] * 15
    assert [sparsity_scale(s, 0) for s in range(3)] == [1.0] * 3
    assert sparsity_warmup_steps(1) == 0  # too short a run for a warm-up: full strength throughout
