"""`saescope.stats.pearson`: the correlation numpy computes, and None where nothing is measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saescope.stats import pearson


def test_pearson_is_numpys_correlation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    assert pearson(list(x), list(y)) == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12)
    assert pearson([1, 2, 3], [-2, -4, -6]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("a", "b"),
    [([], []), ([1.0], [2.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([1.0, math.nan], [1.0, 2.0])],
)
def test_pearson_not_measured_is_none(a: list[float], b: list[float]) -> None:
    assert pearson(a, b) is None


def test_pearson_refuses_unpaired_lists() -> None:
    with pytest.raises(ValueError, match="pairs"):
        pearson([1.0, 2.0], [1.0])
