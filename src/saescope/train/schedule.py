"""Learning-rate schedule: linear warm-up, then constant, cosine or linear decay to a floor.

A pure function of the step, so a resumed run needs nothing but the step number.
"""

from __future__ import annotations

import math


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


def default_peak_lr(d_sae: int) -> float:
    """2e-4 / sqrt(d_sae / 2^14): the learning-rate scaling of Gao et al. (2024)."""
    return 2e-4 / math.sqrt(d_sae / 2**14)
