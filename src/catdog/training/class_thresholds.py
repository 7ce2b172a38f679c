"""One decision threshold per class of a multi-label classifier, chosen on validation data.

A class is shown when its sigmoid probability reaches its threshold. The candidates of a class
are the midpoints between its adjacent distinct validation probabilities (0 and 1 closing the
list), so no candidate sits on a validation probability and a tiny float difference between
engines (TensorFlow, LiteRT) rarely flips a decision; 0.5 is the fallback. Goals:

- ``"f1"``: the threshold of the highest F1 (of equal ones, the nearest 0.5);
- ``"precision=0.9"``: the lowest threshold whose precision reaches 0.9 (the most recall
  at that precision);
- ``"recall=0.9"``: the highest threshold whose recall reaches 0.9 (the most precision at
  that recall).

A class without positives or without negatives in the validation data, or whose goal no
candidate reaches, keeps 0.5, with a warning on the ``catdog`` logger."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.report.multilabel_evaluation import check_multi_label_model, probabilities_and_targets
from catdog.report.multilabel_metrics import check_multi_hot

if TYPE_CHECKING:
    import keras

    from catdog.data.pipelines import Splits

logger = logging.getLogger("catdog")

DEFAULT_GOAL = "f1"
"""The goal of ``fit_class_thresholds`` unless told: the threshold of the highest F1."""

FALLBACK_THRESHOLD = 0.5
"""The threshold of a class whose validation data cannot choose one."""

GOAL_FORMS = ('"f1"', '"precision=X"', '"recall=X"')


def parse_threshold_goal(goal: str) -> tuple[str, float | None]:
    """``("f1", None)``, ``("precision", X)`` or ``("recall", X)`` from a goal's text, with X in
    (0, 1].

    Examples:
        >>> parse_threshold_goal("precision=0.9"), parse_threshold_goal(" F1 ")
        (('precision', 0.9), ('f1', None))
    """
    text = str(goal).strip().lower().replace(" ", "")
    if text == "f1":
        return "f1", None
    name, _, value = text.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = float("nan")
    if name not in ("precision", "recall") or not 0 < target <= 1:
        raise InvalidArgumentError(
            f"threshold goal {goal!r} is not one of {', '.join(GOAL_FORMS)} "
            '(X a number in (0, 1], e.g. "precision=0.9").'
        )
    return name, target


def candidate_thresholds(probs) -> np.ndarray:
    """The candidate thresholds of one class: the midpoints between its adjacent distinct
    probabilities, 0 and 1 included as ends, in increasing order.

    Examples:
        >>> candidate_thresholds([0.2, 0.8, 0.2]).tolist()
        [0.1, 0.5, 0.9]
    """
    values = np.unique(np.r_[0.0, np.asarray(probs, np.float64).ravel(), 1.0])
    return (values[1:] + values[:-1]) / 2


def _counts(truth: np.ndarray, probs: np.ndarray, candidates: np.ndarray) -> tuple:
    """True and false positives at each candidate threshold (shown: probability >= it)."""
    positives = np.sort(probs[truth])
    negatives = np.sort(probs[~truth])
    tp = len(positives) - np.searchsorted(positives, candidates, side="left")
    fp = len(negatives) - np.searchsorted(negatives, candidates, side="left")
    return tp, fp


def _pick(truth: np.ndarray, probs: np.ndarray, goal: tuple) -> float | None:
    """The threshold of one class meeting ``goal``; ``None`` when no candidate reaches it."""
    candidates = candidate_thresholds(probs)
    tp, fp = _counts(truth, probs, candidates)
    recall = tp / truth.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    kind, target = goal
    if kind == "f1":
        best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0, atol=1e-12))
        return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
    rate = precision if kind == "precision" else recall
    reached = np.flatnonzero((rate >= target - 1e-12) & (tp > 0))
    if not len(reached):
        return None
    return float(candidates[reached[0] if kind == "precision" else reached[-1]])


def _name(class_names: Sequence[str] | None, k: int) -> str:
    return f"class {k}" if class_names is None else f"class {k} ({class_names[k]!r})"


def fit_class_thresholds(
    targets, probs, goal: str = DEFAULT_GOAL, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """One threshold per class, chosen on validation ``targets`` (multi-hot 0/1) and ``probs``
    (per-class sigmoids), both ``(images, classes)``, to meet ``goal``: ``"f1"``,
    ``"precision=X"`` or ``"recall=X"`` (see the module's description). ``class_names`` only
    name the classes in warnings.

    Examples:
        >>> targets = [[1, 0], [1, 1], [0, 0], [0, 1]]
        >>> probs = [[0.9, 0.2], [0.6, 0.8], [0.3, 0.4], [0.7, 0.5]]
        >>> fit_class_thresholds(targets, probs).round(6).tolist()
        [0.45, 0.45]
    """
    truth, probs = check_multi_hot(targets, probs, finite=True)
    parsed = parse_threshold_goal(goal)
    if class_names is not None and len(class_names) != truth.shape[1]:
        raise InvalidArgumentError(
            f"class_names names {len(class_names)} classes, the data has {truth.shape[1]}."
        )
    thresholds = np.full(truth.shape[1], FALLBACK_THRESHOLD)
    for k in range(truth.shape[1]):
        positives = int(truth[:, k].sum())
        if positives in (0, len(truth)):
            logger.warning(
                "class thresholds: %s has %s in the validation data; it keeps %s",
                _name(class_names, k), "no positives" if not positives else "no negatives",
                FALLBACK_THRESHOLD,
            )  # fmt: skip
            continue
        found = _pick(truth[:, k], probs[:, k], parsed)
        if found is None:
            logger.warning(
                "class thresholds: no threshold of %s reaches %s on the validation data; "
                "it keeps %s", _name(class_names, k), goal, FALLBACK_THRESHOLD,
            )  # fmt: skip
        else:
            thresholds[k] = found
    return thresholds


def set_class_thresholds(
    model: keras.Model, splits: Splits, goal: str = DEFAULT_GOAL, *, engine: str = "tensorflow"
) -> list[float]:
    """Fit a multi-label ``model``'s threshold per class on ``splits``' validation images for
    ``goal`` and keep them in the model (its ``class_thresholds``, saved with it); return them.

    Examples:
        ```python
        train(model, splits, epochs=10)
        set_class_thresholds(model, splits, "precision=0.9")
        evaluate_multilabel(model, splits)
        ```
    """
    if not getattr(splits, "multi_label", False):
        raise InvalidArgumentError(
            "set_class_thresholds needs multi-label data (read from a labels file)."
        )
    check_multi_label_model(model, splits.class_names, "set_class_thresholds")
    parse_threshold_goal(goal)  # before the pass over the images
    probs, targets = probabilities_and_targets(model, splits.validation, engine=engine)
    found = fit_class_thresholds(targets, probs, goal, class_names=model.class_names)
    model.class_thresholds = found.tolist()
    return model.class_thresholds
