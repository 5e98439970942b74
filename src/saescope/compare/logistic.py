"""L2-regularised logistic regression in torch, for the probes of absorption and sparse probing.

    probe = fit_logistic(x_train, y_train)          # y: [n] or [n, C] of 0/1 (C independent probes)
    probe.decision(x_test) > 0                      # [n, C] predictions
    balanced_accuracy(probe.decision(x_test)[:, 0] > 0, y_test)

Each probe minimises the class-balanced mean binary cross-entropy plus `λ/2 ‖w‖²` with
`λ = 1 / (C·n)` — scikit-learn's `LogisticRegression(C=c, class_weight="balanced")` objective
divided by n — over features standardised on the training set (so the penalty treats every
feature alike, whatever its scale); the bias is not penalised. Full batch, float64, L-BFGS with a
strong-Wolfe line search: the objective is smooth and strictly convex, so it converges to the one
optimum (the tests check the gradient there and agree with Newton's method). Several probes (`y`
of shape [n, C]) are fitted at once: their objectives are independent, so minimising the sum
minimises each.

The fits run on one torch thread: on these 2-core machines a fit of a few thousand examples ran
2-8x slower on two threads (threads contending with each other and with any other process).

Accuracy here is always measured by the caller on examples the probe was not fitted on.
This module knows nothing about SAEs, models or tasks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import SaescopeError

DEFAULT_C = 1.0
"""Inverse regularisation strength (scikit-learn's default)."""
MAX_ITER = 100
"""L-BFGS iterations at most (each a few passes over the training set); the probes of this package
converge in 25-50 (held-out accuracy no longer changes)."""


class LogisticProbe(NamedTuple):
    """Fitted probes: `decision(x) = standardise(x) @ weight.T + bias`."""

    weight: Tensor
    """[C, d] weights on the standardised features (float64)."""
    bias: Tensor
    """[C] biases."""
    mean: Tensor
    """[d] the training features' mean."""
    scale: Tensor
    """[d] their standard deviation (1 where a feature is constant)."""

    def decision(self, x: Tensor) -> Tensor:
        """[n, C] logits of `x` [n, d] (positive: the probe says yes)."""
        z = (x.double() - self.mean) / self.scale
        return z @ self.weight.T + self.bias

    def direction(self) -> Tensor:
        """[C, d] each probe's direction in the original feature space (weights over the scale)."""
        return self.weight / self.scale


def class_weights(y: Tensor) -> Tensor:
    """[n, C] weights giving each class of each probe half the total weight (`balanced`)."""
    n = y.shape[0]
    positives = y.sum(0).clamp_min(1)
    negatives = (n - y.sum(0)).clamp_min(1)
    return torch.where(y > 0, n / (2 * positives), n / (2 * negatives))


def check_labels(y: Tensor) -> None:
    """Every probe needs both classes among its training examples."""
    counts = y.sum(0)
    if bool(((counts == 0) | (counts == y.shape[0])).any()):
        raise SaescopeError("a probe's training examples are all of one class: nothing to separate")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside the block (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_logistic(x: Tensor, y: Tensor, c: float = DEFAULT_C, max_iter: int = MAX_ITER) -> LogisticProbe:
    """Probes fitted on `x` [n, d] for the 0/1 labels `y` ([n] or [n, C]); see the module docstring."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise SaescopeError("a probe needs a non-empty [examples, features] matrix")
    labels = (y.reshape(len(y), -1) > 0).double()
    check_labels(labels)
    data = x.double()
    mean = data.mean(0)
    scale = data.std(0, unbiased=False)
    scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
    z = (data - mean) / scale
    weights = class_weights(labels)
    weights = weights / weights.sum(0, keepdim=True)
    penalty = 1.0 / (c * len(z))
    w = torch.zeros(labels.shape[1], z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(labels.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> Tensor:
        optimizer.zero_grad()
        logits = z @ w.T + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        value = (weights * loss).sum() + 0.5 * penalty * w.pow(2).sum()
        value.backward()  # type: ignore[no-untyped-call]
        return value

    with torch.enable_grad(), one_thread():
        optimizer.step(objective)  # type: ignore[no-untyped-call]
    return LogisticProbe(w.detach(), b.detach(), mean, scale)


def balanced_accuracy(predicted: Tensor, truth: Tensor) -> float:
    """Mean of the true-positive and true-negative rates (0.5 is chance whatever the class sizes);
    NaN when one class is absent from `truth`."""
    p, t = predicted.bool().reshape(-1), truth.bool().reshape(-1)
    if not bool(t.any()) or bool(t.all()):
        return float("nan")
    return 0.5 * (float((p & t).sum()) / float(t.sum()) + float((~p & ~t).sum()) / float((~t).sum()))


def f1_score(predicted: Tensor, truth: Tensor) -> float:
    """F1 of the positive class (0 when nothing is predicted or nothing is positive)."""
    p, t = predicted.bool().reshape(-1), truth.bool().reshape(-1)
    tp = float((p & t).sum())
    denominator = float(p.sum()) + float(t.sum())
    return 2 * tp / denominator if denominator > 0 else 0.0


__all__ = ["LogisticProbe", "balanced_accuracy", "class_weights", "f1_score", "fit_logistic"]
