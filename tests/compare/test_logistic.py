"""The package's own logistic regression: it reaches the optimum of its objective (gradient zero,
the same weights as Newton's method), generalises on held-out data, and refuses one class."""

from __future__ import annotations

import pytest
import torch

from saescope.compare.logistic import balanced_accuracy, class_weights, f1_score, fit_logistic
from saescope.errors import SaescopeError


def data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * torch.linspace(0.5, 3.0, d)
    w = torch.randn(d, generator=gen)
    y = (x @ w + 2.0 * torch.randn(n, generator=gen) > 1.0).float()
    return x, y


def newton(z: torch.Tensor, y: torch.Tensor, penalty: float, steps: int = 50) -> torch.Tensor:
    """The class-balanced, L2-penalised (bias free) optimum by Newton's method (reference)."""
    s = class_weights(y[:, None])[:, 0]
    s = s / s.sum()
    a = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
    theta = torch.zeros(a.shape[1], dtype=z.dtype)
    reg = torch.full((a.shape[1],), penalty, dtype=z.dtype)
    reg[-1] = 0.0
    for _ in range(steps):
        p = torch.sigmoid(a @ theta)
        grad = a.T @ (s * (p - y)) + reg * theta
        hess = (a * (s * p * (1 - p))[:, None]).T @ a + torch.diag(reg)
        theta = theta - torch.linalg.solve(hess, grad)
    return theta


def test_it_reaches_the_optimum_newton_finds() -> None:
    x, y = data(400, 6, 0)
    probe = fit_logistic(x, y)
    z = (x.double() - probe.mean) / probe.scale
    reference = newton(z, y.double(), 1.0 / len(x))
    assert torch.allclose(probe.weight[0], reference[:-1], atol=1e-4)
    assert abs(float(probe.bias[0]) - float(reference[-1])) < 1e-4


def test_held_out_accuracy_is_well_above_chance_and_on_unseen_examples() -> None:
    x, y = data(1200, 8, 1)
    probe = fit_logistic(x[:800], y[:800])
    accuracy = balanced_accuracy(probe.decision(x[800:])[:, 0] > 0, y[800:])
    assert 0.75 < accuracy < 1.0
    # labels that are noise: held-out accuracy stays near chance (it can come out badly)
    noise = (torch.rand(1200, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    probe = fit_logistic(x[:800], noise[:800])
    assert abs(balanced_accuracy(probe.decision(x[800:])[:, 0] > 0, noise[800:]) - 0.5) < 0.1


def test_several_probes_at_once_equal_one_at_a_time() -> None:
    x, y = data(300, 5, 3)
    y2 = (x[:, 0] > 0).float()
    both = fit_logistic(x, torch.stack([y, y2], dim=1))
    single = fit_logistic(x, y2)
    assert torch.allclose(both.weight[1], single.weight[0], atol=1e-4)


def test_one_class_is_refused() -> None:
    x, _ = data(50, 3, 4)
    with pytest.raises(SaescopeError, match="one class"):
        fit_logistic(x, torch.ones(50))


def test_scores() -> None:
    truth = torch.tensor([1, 1, 0, 0, 0, 0]).bool()
    assert balanced_accuracy(torch.tensor([1, 0, 0, 0, 0, 1]).bool(), truth) == pytest.approx(
        0.5 * (0.5 + 0.75)
    )
    assert f1_score(torch.tensor([1, 0, 0, 0, 0, 1]).bool(), truth) == pytest.approx(0.5)
    assert f1_score(torch.zeros(6).bool(), truth) == 0.0
    assert balanced_accuracy(truth, torch.ones(6).bool()) != balanced_accuracy(
        truth, torch.ones(6).bool()
    )  # NaN
