"""Small statistics for evaluation reports: bootstrap intervals, agreement, length-controlled win rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 1000


def bootstrap_ci(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling items with replacement (fixed seed: reproducible)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (round(float(low), 4), round(float(high), 4))


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Agreement beyond chance between two raters' labels (1 perfect, 0 chance, < 0 worse than chance)."""
    if len(first) != len(second) or not first:
        raise ValueError("kappa needs two equally long, non-empty label lists")
    labels = sorted(set(first) | set(second))
    observed = sum(a == b for a, b in zip(first, second)) / len(first)
    expected = sum((list(first).count(label) / len(first)) * (list(second).count(label) / len(second)) for label in labels)
    return 1.0 if expected == 1 else round((observed - expected) / (1 - expected), 4)


def length_controlled_win_rate(outcomes: Sequence[float], length_gaps: Sequence[float], ridge: float = 1.0) -> float:
    """Win rate with the answers' length difference regressed out (after AlpacaEval's length control).

    outcomes: 1 a wins, 0.5 tie, 0 b wins; length_gaps: len(a) - len(b), any unit. A logistic model
    P(a wins) = sigmoid(w0 + w1 * tanh(gap / sd)) is fitted with a small ridge penalty (a judge that
    always agrees would otherwise push the weights to infinity); the result is sigmoid(w0): the win rate
    of two answers of equal length."""
    y = np.asarray(outcomes, dtype=float)
    gaps = np.asarray(length_gaps, dtype=float)
    if y.size == 0:
        return float("nan")
    scale = gaps.std() or 1.0
    x = np.stack([np.ones_like(gaps), np.tanh(gaps / scale)], axis=1)
    w = np.zeros(2)
    for _ in range(50):  # Newton's method on the penalised log-likelihood; ties count half each way
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (y - p) - ridge * w
        hessian = -(x.T * (p * (1 - p))) @ x - ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return round(float(1 / (1 + np.exp(-w[0]))), 4)
