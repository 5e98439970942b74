"""Learning-rate schedule, and the defaults derived from a run's length and width.

`learning_rate`: linear warm-up, then constant, cosine or linear decay to a floor — a pure function
of the step, so a resumed run needs nothing but the step number.

Defaults (used when --lr / --warmup-steps are not given), so that a run of any budget trains well:

- warm-up: 5 per cent of the steps, at least 1 and at most 1000. A fixed count is wrong at one end
  or the other: the 100 steps once used here are longer than a whole short run (300k tokens at
  batch 4096 are 73 steps), and negligible in a long one.
- peak learning rate: STEPS_LR · steps^(−STEPS_EXPONENT) · min(1, √(WIDTH_FROM / latents)).
  The long-run rule of Gao et al. 2024, 2e-4·√(2^14 / latents), was fitted on runs of billions of
  tokens; a short run must move much further per step. Sweeps of TopK SAEs (k 32, batch 4096) on
  SmolLM2-135M's residual stream at layer 15 (200k stored rows; `benchmarks/defaults.py` prints two
  of them) put the best rate (the vertex of a parabola through the best three of a factor-2 sweep)
  of 4,608 latents at 4.1e-3 after 73 steps, 5e-3 after 244 and 2.7e-3 after 732: a slow fall with
  the number of steps, fitted by 1e-2 · steps^(−1/5). It did not depend on the width: 1,152, 4,608
  and 18,432 latents all peaked at about 4e-3 after 73 steps (1,152 and 4,608 at 3.1e-3 and 2.7e-3
  after 732), so the width factor is Gao et al.'s 1/√latents only beyond the widths measured. At
  10^6 steps and 2^16 latents this gives 3.4e-4, against Gao et al.'s 1e-4.

`sparsity_scale`: the factor on an architecture's sparsity penalty (the L1 of ReLU and gated SAEs,
the L0 of JumpReLU), rising linearly from 0 to 1 over the first SPARSITY_WARMUP_FRACTION of the
steps (SAELens's `l1_warm_up_steps`; Anthropic's April 2024 update warms λ up over the first 5 per
cent of much longer runs). Without it the penalty acts at full strength on the freshly initialised
SAE, whose activations are still large: a gated SAE on the demo's data went from L0 ~1,200 to ~50 in
its first 70 steps and lost 54% of its latents for good, since a closed gate gets no gradient. Gated
SAEs on the demo's store (4,608 latents, 200k tokens = 97 steps, λ set for L0 ≈ 32 each), dead
(silent for 50k tokens) and FVU at the end: no warm-up 64.7% / 0.260, a fifth 20.9% / 0.248, 0.35
10.7% / 0.259, a half 7.0% / 0.272 — fewer dead latents the longer the warm-up, at some cost in FVU
in so short a run; 0.35 is the compromise.

This module knows nothing about SAEs, data or optimisers.
"""

from __future__ import annotations

import math

WARMUP_FRACTION = 0.05
"""Default warm-up as a fraction of the run's steps."""

MAX_WARMUP_STEPS = 1000
"""Longest default warm-up."""

STEPS_LR = 1e-2
"""The default peak learning rate is STEPS_LR · steps^(−STEPS_EXPONENT) up to WIDTH_FROM latents."""

STEPS_EXPONENT = 0.2
"""How fast the best peak learning rate falls with the number of steps (see the module docstring)."""

SPARSITY_WARMUP_FRACTION = 0.35
"""The sparsity penalty's warm-up as a fraction of the run's steps (see the module docstring)."""

WIDTH_FROM = 18432
"""Widest SAE measured without a width effect; wider ones get √(WIDTH_FROM / latents) of the rate."""


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


def default_peak_lr(d_sae: int, total_steps: int) -> float:
    """The default peak learning rate of an SAE of `d_sae` latents trained for `total_steps` steps."""
    steps_rule = STEPS_LR * max(total_steps, 1) ** -STEPS_EXPONENT
    return steps_rule * min(1.0, math.sqrt(WIDTH_FROM / d_sae))


def default_warmup_steps(total_steps: int) -> int:
    """5 per cent of the steps, at least 1, at most 1000."""
    return max(1, min(MAX_WARMUP_STEPS, round(WARMUP_FRACTION * total_steps)))


def long_run_lr(d_sae: int) -> float:
    """2e-4 · √(2^14 / d_sae): Gao et al. 2024's rule for runs of billions of tokens (the default
    before it depended on the run's length; `benchmarks/defaults.py` compares against it)."""
    return 2e-4 / math.sqrt(d_sae / 2**14)


def sparsity_warmup_steps(total_steps: int) -> int:
    """Steps over which the sparsity penalty rises to full strength: SPARSITY_WARMUP_FRACTION of them."""
    return round(SPARSITY_WARMUP_FRACTION * total_steps)


def sparsity_scale(step: int, warmup_steps: int) -> float:
    """The factor on the sparsity penalty at optimisation step `step` (0-based): (step + 1) / warmup_steps
    during the warm-up, then 1 (always 1 without a warm-up)."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
