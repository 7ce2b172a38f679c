"""Which learning rate to train with: Smith's learning-rate range test.

[`lr_find`][catdog.training.lr_finder.lr_find] trains on one pass of the training data while the
learning rate grows exponentially from ``start`` to ``end``, records the loss of each batch,
and [`suggest_learning_rate`][catdog.training.lr_finder.suggest_learning_rate] suggests the rate
where
the smoothed loss falls fastest (Smith, "Cyclical Learning Rates for Training Neural
Networks", 2017; fastai's ``lr_find``), or none, saying why, when the loss shows no clear
descent. The model's weights and its optimizer's state are restored afterwards, exactly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from catdog._rules import check_int, check_positive_number
from catdog.errors import InvalidArgumentError
from catdog.report.plotting import plot_lr_find


@dataclass
class LRFinderResult:
    """The sweep: each batch's learning rate and smoothed loss, and the suggested rate.

    ``suggestion`` is ``None`` when the loss showed no clear descent; ``note`` then says why
    (train with a rate of your own, or change the sweep as it says).
    """

    learning_rates: list[float]
    losses: list[float]
    suggestion: float | None
    note: str | None = None

    def plot(self, path=None):
        """Loss against learning rate (log scale), the suggestion marked; see ``plot_lr_find``."""
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
    are exponentially smoothed (``smoothing``, bias-corrected); after a warm-up (a tenth of the
    sweep, at least 10 batches) the sweep stops once the smoothed loss exceeds ``divergence``
    times its minimum (a minimum below 0.1 counts as 0.1, so a loss that wiggles near 0 is
    not divergence), or at once when a loss is not finite. The suggestion is the rate of the
    steepest descent of the smoothed loss, or ``None`` with a ``note`` when there is no clear
    descent (see [`suggest_learning_rate`][catdog.training.lr_finder.suggest_learning_rate]). An
    uncompiled model is compiled with [`compile_model`][catdog.models.classifier.compile_model] (at
    its
    default rate: compile it again with the suggestion before ``train``, which keeps a
    compiled model's optimizer). Weights, other variables (random seeds' states) and optimizer
    state (including its learning rate) are exactly as before when it returns.

    Args:
        model (keras.Model): the model to sweep (compiled, or compiled here at its default rate).
        splits (Splits | tuple): a ``Splits``, or ``(train, validation)`` datasets; only the
            training data is used.
        start: the first learning rate, positive.
        end: the last learning rate, above ``start``.
        steps: batches in the sweep, at least 2 (default: one pass, at least 100).
        smoothing: the exponential smoothing of the loss, in [0, 1).
        divergence: the sweep stops when the smoothed loss exceeds this many times its minimum.

    Examples:
        ```python
        result = lr_find(model, splits)
        result.suggestion
        # 0.0012
        result.plot(path="lr_find.png")
        ```
    """
    from catdog.training.fit import train_and_validation

    check_positive_number("start", start)
    check_positive_number("end", end)
    if not start < end:
        raise InvalidArgumentError(f"start must be below end, got start={start}, end={end}.")
    _check_smoothing(smoothing, divergence)
    train_data, _ = train_and_validation(splits)
    if steps is None:  # one pass, at least 100 batches (the data repeated if shorter)
        steps = max(100, int(train_data.cardinality()))
    check_int("steps", steps, minimum=2)
    optimizer = _constant_rate_optimizer(model)
    rates = [start * ((end / start) ** (1 / (steps - 1))) ** step for step in range(steps)]
    warmup = _warmup(steps)
    with _variables_restored(model, optimizer):
        losses = _sweep(model, optimizer, train_data, rates, smoothing, warmup, divergence)
    return suggest_learning_rate(
        rates[: len(losses)], losses, smoothing=smoothing, divergence=divergence, warmup=warmup
    )


def _constant_rate_optimizer(model):
    """The model's optimizer (compiling the model if needed), built, with a settable rate."""
    from catdog.models.classifier import compile_model

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
    return optimizer


@contextlib.contextmanager
def _variables_restored(model, optimizer) -> Iterator[None]:
    """Put the model's variables and the optimizer's state back as they were, whatever happens."""
    saved_weights = [v.numpy() for v in model.variables]
    saved_state = [v.numpy() for v in optimizer.variables]
    try:
        yield
    finally:
        for variable, value in zip(model.variables, saved_weights, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_state, strict=True):
            variable.assign(value)


def _sweep(model, optimizer, train_data, rates, smoothing, warmup, divergence) -> list[float]:
    """Train one batch at each rate of ``rates``; the batches' losses, up to divergence."""
    losses = []
    smoothed, best = 0.0, math.inf
    batches = train_data.repeat().take(len(rates))
    for step, ((images, labels), rate) in enumerate(zip(batches, rates, strict=False)):
        optimizer.learning_rate.assign(rate)
        loss = float(model.train_on_batch(images, labels, return_dict=True)["loss"])
        losses.append(loss)
        smoothed = smoothing * smoothed + (1 - smoothing) * loss
        value = smoothed / (1 - smoothing ** (step + 1))  # bias-corrected
        if _diverged(value, best, step, warmup, divergence):
            break
        best = min(best, value)
    return losses


def suggest_learning_rate(
    learning_rates: Sequence[float],
    losses: Sequence[float],
    *,
    smoothing: float = 0.98,
    divergence: float = 4.0,
    warmup: int | None = None,
    min_drop: float = 0.2,
) -> LRFinderResult:
    """The learning rate a sweep's per-batch ``losses`` suggest (what ``lr_find`` returns).

    The losses are smoothed (exponential moving average, bias-corrected) and cut where the
    sweep diverged: a loss that is not finite, or after the first ``warmup`` batches (default:
    a tenth of the sweep, at least 10) a smoothed loss above ``divergence`` times the smoothed
    minimum so far (a minimum below 0.1 counts as 0.1). The suggestion is the rate where the
    smoothed loss falls fastest per factor of rate (its slope measured over a window of a
    tenth of the sweep, between the end of the warm-up and the lowest smoothed loss).

    There is none (``suggestion=None`` and a ``note`` saying why) when the sweep diverged
    within its warm-up, when the lowest smoothed loss after the warm-up is not ``min_drop``
    (a fraction) below the median loss of the warm-up (of 0.1 for a median below 0.1: no
    clear descent), or when the
    steepest descent is at the very start of the judged part of the sweep (the loss was
    falling before it: lower the start).

    Args:
        learning_rates: each batch's learning rate, positive and increasing.
        losses: each batch's loss, as many as rates.
        smoothing: the exponential smoothing of the loss, in [0, 1).
        divergence: the sweep is cut where the smoothed loss exceeds this many times its minimum.
        warmup: batches before divergence and descent are judged (default: a tenth, at least 10).
        min_drop: the fraction of the warm-up's median loss the loss must fall by, in (0, 1).

    Examples:
        >>> rates = [1e-6 * 10 ** (i / 20) for i in range(100)]
        >>> u_shaped = [1.0 - 0.8 * math.exp(-((i - 60) / 15) ** 2) for i in range(100)]
        >>> f"{suggest_learning_rate(rates, u_shaped).suggestion:.1g}"
        '0.0006'
        >>> flat = suggest_learning_rate(rates, [0.7] * 100)
        >>> flat.suggestion is None, flat.note[:16]
        (True, 'no clear descent')
    """
    _check_smoothing(smoothing, divergence)
    rates, raw = _checked_sweep(learning_rates, losses, min_drop)
    if warmup is None:
        warmup = _warmup(len(raw))
    check_int("warmup", warmup, minimum=1)
    kept = _smoothed_until_divergence(raw, smoothing, warmup, divergence)
    rates = rates[: len(kept)]

    def none(note: str) -> LRFinderResult:
        return LRFinderResult(rates, kept, None, note)

    if len(kept) < warmup + 3:
        if len(kept) < len(raw):
            return none(
                f"the loss diverged after {len(kept)} batches (at {learning_rates[len(kept)]:.2g}),"
                f" within the warm-up of {warmup}: lower the start of the sweep (it was "
                f"{learning_rates[0]:.2g})"
            )
        return none(f"{len(raw)} batches are too few to judge: sweep at least {warmup + 3}")
    losses_ = np.asarray(kept)
    reference = float(np.median(raw[:warmup]))  # robust to a batch's outlier
    lowest = warmup + int(np.argmin(losses_[warmup:]))
    needed = min_drop * max(reference, _LOSS_FLOOR)
    if not losses_[lowest] <= reference - needed:
        return none(
            f"no clear descent: the smoothed loss never fell {needed:.2g} below "
            f"{reference:.3g}, the median loss of the warm-up (lowest {losses_[lowest]:.3g})"
        )
    steepest = _steepest_descent(rates, losses_, warmup, lowest)
    if steepest <= warmup:
        return none(
            f"no clear descent: the loss fell fastest at {rates[steepest]:.2g}, the first rate "
            "judged after the warm-up; if it was falling from the first batch, lower the start "
            "of the sweep"
        )
    return LRFinderResult(rates, kept, rates[steepest])


def _checked_sweep(learning_rates, losses, min_drop: float) -> tuple[list[float], list[float]]:
    """The rates and losses as floats, checked: as many of each, rates positive, increasing."""
    rates = [float(r) for r in learning_rates]
    raw = [float(x) for x in losses]
    if len(rates) != len(raw):
        raise InvalidArgumentError(
            f"learning_rates and losses must be as long as each other, got {len(rates)} "
            f"and {len(raw)}."
        )
    if not all(0 < r for r in rates) or not all(np.diff(rates) > 0):
        raise InvalidArgumentError("learning_rates must be positive and increasing.")
    if not 0 < min_drop < 1:
        raise InvalidArgumentError(f"min_drop must be in (0, 1), got {min_drop!r}.")
    return rates, raw


def _smoothed_until_divergence(raw, smoothing: float, warmup: int, divergence: float) -> list:
    """The bias-corrected smoothed losses, up to (not including) where the sweep diverged."""
    kept, smoothed, best = [], 0.0, math.inf
    for step, loss in enumerate(raw):
        smoothed = smoothing * smoothed + (1 - smoothing) * loss
        value = smoothed / (1 - smoothing ** (step + 1))
        if _diverged(value, best, step, warmup, divergence):
            break
        best = min(best, value)
        kept.append(value)
    return kept


def _steepest_descent(rates, losses_: np.ndarray, warmup: int, lowest: int) -> int:
    """The batch between ``warmup`` and ``lowest`` where the smoothed loss falls fastest per
    factor of rate (its slope over a window of a tenth of the sweep)."""
    logs = np.log(np.asarray(rates))
    window = max(1, len(losses_) // 20)  # each side: the slope over a tenth of the sweep
    index = np.arange(warmup, lowest + 1)
    left = np.clip(index - window, warmup, lowest)
    right = np.clip(index + window, warmup, lowest)
    slopes = (losses_[right] - losses_[left]) / (logs[right] - logs[left])
    return int(index[np.argmin(slopes)])


_LOSS_FLOOR = 0.1
"""A loss below this counts as this when judging divergence and descent: a trained model's
loss of 0.01 that wiggles to 0.05 is noise, not divergence, and one that falls to 0.005 is
no clear descent."""


def _warmup(steps: int) -> int:
    """Batches before divergence is judged: a tenth of the sweep, at least 10 (at most half)."""
    return max(1, min(steps // 2, max(10, steps // 10)))


def _diverged(value: float, best: float, step: int, warmup: int, divergence: float) -> bool:
    """Whether the sweep stops at this smoothed loss: not finite, or after the warm-up above
    ``divergence`` times the smoothed minimum (floored at ``_LOSS_FLOOR``)."""
    if not math.isfinite(value):
        return True
    return step >= warmup and value > divergence * max(best, _LOSS_FLOOR)


def _check_smoothing(smoothing: float, divergence: float) -> None:
    if not 0 <= smoothing < 1:
        raise InvalidArgumentError(f"smoothing must be in [0, 1), got {smoothing!r}.")
    if not (isinstance(divergence, int | float) and divergence > 1):
        raise InvalidArgumentError(f"divergence must be a number above 1, got {divergence!r}.")
