"""Learning-rate schedule and the defaults derived from a run's length and width.

`learning_rate`: linear warm-up, then constant, cosine or linear decay to a floor — a pure function
of the step, so a resumed run needs nothing but the step number.

Defaults (used when --lr / --warmup-steps are not given), so that a run of any budget trains well:

- warm-up: 5% of the steps, at least 1 and at most 1000 (a fixed count, such as the 100 steps
  once used here, is longer than a whole short run: 300k tokens at batch 4096 are 73 steps);
- peak learning rate: the larger of two rules,
    width rule  2e-4 · √(2^14 / latents)        Gao et al. 2024, fitted on runs of billions of tokens
    steps rule  STEPS_LR · (steps)^(−STEPS_EXPONENT)   fitted here on short runs (see below)
  A long run is limited by its width (Gao et al.'s rule); a short one must move far in few steps,
  and there the best rate depends on the number of steps and hardly on the width. The steps rule
  was fitted on learning-rate sweeps of TopK SAEs (k 32, batch 4096) on SmolLM2-135M's residual
  stream, layer 15 (`benchmarks/defaults.py` prints them): the best rate was 4e-3 at 73 steps for
  both 1,152 and 4,608 latents, and 1.3e-3 at 732 steps for 4,608 latents.

This module knows nothing about SAEs, data or optimisers.
"""

from __future__ import annotations

import math

WARMUP_FRACTION = 0.05
"""Default warm-up as a fraction of the run's steps."""

MAX_WARMUP_STEPS = 1000
"""Longest default warm-up (sparsify's default warm-up length)."""

STEPS_LR = 0.035
"""Steps rule: the best peak learning rate of a one-step run, extrapolated (see module docstring)."""

STEPS_EXPONENT = 0.5
"""Steps rule: the best peak learning rate falls as steps^-STEPS_EXPONENT."""


def learning_rate(
    step: int, *, peak: float, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float
) -> float:
    """The learning rate for optimisation step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return peak
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    floor = peak * min_ratio
    if schedule == "cosine":
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return peak - (peak - floor) * progress
    raise ValueError(f"unknown schedule {schedule!r}")


def width_rule_lr(d_sae: int) -> float:
    """2e-4 / sqrt(d_sae / 2^14): the learning-rate scaling of Gao et al. (2024), for long runs."""
    return 2e-4 / math.sqrt(d_sae / 2**14)


def steps_rule_lr(total_steps: int) -> float:
    """STEPS_LR · total_steps^-STEPS_EXPONENT: the best rate of a short run (see module docstring)."""
    return STEPS_LR * max(total_steps, 1) ** -STEPS_EXPONENT


def default_peak_lr(d_sae: int, total_steps: int) -> float:
    """The default peak learning rate of an SAE of `d_sae` latents trained for `total_steps` steps."""
    return max(width_rule_lr(d_sae), steps_rule_lr(total_steps))


def default_warmup_steps(total_steps: int) -> int:
    """5% of the steps, at least 1, at most 1000."""
    return max(1, min(MAX_WARMUP_STEPS, round(WARMUP_FRACTION * total_steps)))
