"""Confidence intervals of a report's numbers, in NumPy only (no TensorFlow or Keras): the
Wilson interval of a proportion and the percentile interval of a seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np

from catdog.errors import InvalidArgumentError

BOOTSTRAP_DRAWS = 1000
"""The number of resamples of a bootstrap interval."""


def wilson_interval(successes: int, total: int, z: float = 1.959963984540054) -> tuple:
    """The Wilson score interval of a proportion (95% for the default ``z``).

    Honest for small test sets and for proportions near 0 or 1, where the normal
    approximation fails.

    Examples:
        >>> [round(x, 4) for x in wilson_interval(199, 200)]
        [0.9722, 0.9991]
    """
    if total <= 0:
        raise InvalidArgumentError(f"wilson_interval needs total >= 1, got {total!r}.")
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_weights(count: int, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> np.ndarray:
    """How many times each of ``count`` items is drawn in each of ``draws`` resamples with
    replacement: a ``(draws, count)`` array of integers whose rows sum to ``count``.

    A statistic that is a sum over items is then one matrix product (``weights @ values``);
    the same ``seed`` gives the same resamples.

    Examples:
        >>> weights = bootstrap_weights(5, draws=3, seed=0)
        >>> weights.shape, weights.sum(axis=1).tolist()
        ((3, 5), [5, 5, 5])
    """
    if count < 1 or draws < 1:
        raise InvalidArgumentError(
            f"bootstrap_weights needs count >= 1 and draws >= 1, got {count!r} and {draws!r}."
        )
    picked = np.random.default_rng(seed).integers(0, count, size=(draws, count))
    offsets = np.arange(draws)[:, None] * count
    counts = np.bincount((picked + offsets).ravel(), minlength=draws * count)
    return counts.reshape(draws, count)


def percentile_interval(estimate: float, values, level: float = 0.95) -> tuple | None:
    """The ``level`` percentile interval of bootstrap ``values`` (NaN draws left out), widened
    when needed to hold ``estimate``; ``None`` when no draw is a number.

    Examples:
        >>> percentile_interval(0.5, [0.4, 0.5, 0.6, float("nan")], level=0.5)
        (0.45, 0.55)
    """
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    tail = (1 - level) / 2 * 100
    low, high = (float(v) for v in np.percentile(values, [tail, 100 - tail]))
    if not math.isnan(estimate):
        low, high = min(low, float(estimate)), max(high, float(estimate))
    return (low, high)
