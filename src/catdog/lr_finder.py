"""Which learning rate to train with: Smith's learning-rate range test.

[`lr_find`][catdog.lr_finder.lr_find] trains on one pass of the training data while the
learning rate grows exponentially from ``start`` to ``end``, records the (smoothed) loss of
each batch, and suggests the rate where the loss falls fastest (Smith, "Cyclical Learning
Rates for Training Neural Networks", 2017; fastai's ``lr_find``). The model's weights and its
optimizer's state are restored afterwards, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from catdog._rules import check_int, check_positive_number
from catdog.errors import InvalidArgumentError


@dataclass
class LRFinderResult:
    """The sweep: each batch's learning rate and smoothed loss, and the suggested rate."""

    learning_rates: list[float]
    losses: list[float]
    suggestion: float

    def plot(self, path=None):
        """Loss against learning rate (log scale), the suggestion marked; see ``plot_lr_find``."""
        from catdog.plotting import plot_lr_find

        return plot_lr_find(self, path=path)


def lr_find(
    model,
    splits,
    *,
    start: float = 1e-7,
    end: float = 1.0,
    steps: int | None = None,
    smoothing: float = 0.98,
    divergence: float = 4.0,
) -> LRFinderResult:
    """Sweep the learning rate over one pass of the training data; suggest one.

    The rate grows exponentially from ``start`` to ``end`` over ``steps`` batches (default:
    one pass of ``splits.train``, at least 100 batches, the data repeated if shorter). Losses
    are exponentially smoothed (``smoothing``); the sweep stops once the loss exceeds
    ``divergence`` times its minimum. The suggestion is the rate of the steepest descent of the
    smoothed loss. An uncompiled model is compiled with
    [`compile_model`][catdog.models.compile_model] (at its default rate: compile it again
    with the suggestion before ``train``, which keeps a compiled model's optimizer). Weights,
    other variables (random seeds' states) and optimizer state (including its learning rate)
    are exactly as before when it returns.

    Examples:
        ```python
        result = lr_find(model, splits)
        result.suggestion
        # 0.0012
        result.plot(path="lr_find.png")
        ```
    """
    from catdog.models import compile_model
    from catdog.training import train_and_validation

    check_positive_number("start", start)
    check_positive_number("end", end)
    if not start < end:
        raise InvalidArgumentError(f"start must be below end, got start={start}, end={end}.")
    if not 0 <= smoothing < 1:
        raise InvalidArgumentError(f"smoothing must be in [0, 1), got {smoothing!r}.")
    train_data, _ = train_and_validation(splits)
    if steps is None:  # one pass, at least 100 batches (the data repeated if shorter)
        steps = max(100, int(train_data.cardinality()))
    check_int("steps", steps, minimum=2)
    if not model.compiled:
        compile_model(model)
    optimizer = model.optimizer
    if not hasattr(optimizer.learning_rate, "assign"):
        raise InvalidArgumentError(
            "lr_find sets the optimizer's learning rate batch by batch; this optimizer has a "
            "schedule. Compile the model with a constant learning rate (compile_model)."
        )
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_weights = [v.numpy() for v in model.variables]
    saved_state = [v.numpy() for v in optimizer.variables]
    factor = (end / start) ** (1 / (steps - 1))
    rates, losses, smoothed, best = [], [], 0.0, math.inf
    try:
        for step, (images, labels) in enumerate(train_data.repeat().take(steps)):
            rate = start * factor**step
            optimizer.learning_rate.assign(rate)
            loss = float(model.train_on_batch(images, labels, return_dict=True)["loss"])
            smoothed = smoothing * smoothed + (1 - smoothing) * loss
            value = smoothed / (1 - smoothing ** (step + 1))  # bias-corrected
            if not math.isfinite(value) or (step > 0 and value > divergence * best):
                break
            best = min(best, value)
            rates.append(rate)
            losses.append(value)
    finally:
        for variable, value in zip(model.variables, saved_weights, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_state, strict=True):
            variable.assign(value)
    if len(losses) < 3:
        raise InvalidArgumentError(
            f"The loss diverged within {len(losses)} batches of the sweep; lower start "
            f"(it was {start:g})."
        )
    return LRFinderResult(rates, losses, _steepest(rates, losses))


def _steepest(rates: list[float], losses: list[float]) -> float:
    """The rate where the loss falls fastest per log-unit of rate (central differences)."""
    slopes = np.gradient(np.asarray(losses), np.log(np.asarray(rates)))
    return float(rates[int(np.argmin(slopes))])
