"""The pure example helpers: the activation order of a posting list equals the two-key sort it
replaces, and quantile draws are the same whichever sort produced them."""

from __future__ import annotations

import numpy as np

from saescope.index.windows import by_activation, quantile_centres


def naive_centres(
    keys: np.ndarray, values: np.ndarray, latent: int, quantiles: int, per: int, seed: int
) -> list:
    """The draw as first written: one lexsort, then a random pick from each equal-count bin."""
    order = np.lexsort((keys, values))
    rng = np.random.default_rng([seed, latent])
    out = []
    for q, rows in enumerate(np.array_split(order, min(quantiles, len(order)))):
        picked = rng.choice(rows, size=min(per, len(rows)), replace=False)
        picked = picked[np.lexsort((keys[picked], -values[picked]))]
        out.append(
            (
                q,
                float(values[rows[0]]),
                float(values[rows[-1]]),
                list(zip(keys[picked].tolist(), values[picked].tolist())),
            )
        )
    return out


def test_the_activation_order_is_the_two_key_sort() -> None:
    rng = np.random.default_rng(3)
    keys = np.sort(rng.choice(10**9, 5000, replace=False)).astype(np.int64)
    half = rng.normal(0, 4, 5000).astype(np.float16).astype(np.float32)  # ties and negatives
    half[:50] = 2.5  # a run of equal activations: ties go by key
    wide = rng.normal(0, 4, 5000).astype(np.float32)  # not float16: the general sort
    small = np.array([3.0, -1.0, 3.0, 0.5, -7.0], dtype=np.float32)
    for values, k in ((half, keys), (wide, keys), (small, keys[:5])):
        assert by_activation(k, values).tolist() == np.lexsort((k, values)).tolist()


def test_quantile_draws_equal_the_naive_draw() -> None:
    rng = np.random.default_rng(4)
    keys = np.sort(rng.choice(10**6, 777, replace=False)).astype(np.int64)
    values = rng.gamma(2, 1, 777).astype(np.float16).astype(np.float32)
    for quantiles, per, seed in ((10, 3, 0), (4, 1, 5), (1000, 2, 1)):
        got = [tuple(g) for g in quantile_centres(keys, values, 9, quantiles, per, seed)]
        assert got == naive_centres(keys, values, 9, quantiles, per, seed)
    assert quantile_centres(keys[:0], values[:0], 9, 10, 3, 0) == []
