"""Small statistics every stage reports the same way.

`pearson` is the Pearson correlation of two equally long lists of numbers, or None when it cannot
be measured (fewer than two pairs, a list without variation, or values that are not finite) — so a
caller prints "not measured" rather than a plausible number.

This module knows nothing about models, dictionaries or stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson correlation of `a` and `b` (same length), in float64; None when it is not measured
    (module docstring)."""
    if len(a) != len(b):
        raise ValueError(f"pearson needs pairs: {len(a)} values against {len(b)}")
    if len(a) < 2:
        return None
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    if not math.isfinite(denominator) or denominator == 0:
        return None
    return float(x @ y) / denominator


__all__ = ["pearson"]
