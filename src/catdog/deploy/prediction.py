"""One image's answer (a [`Prediction`][catdog.deploy.prediction.Prediction]) and the one rule
that names it from a model's outputs: the most likely class, ``unknown`` past the model's
threshold, or, for a multi-label model, every class whose probability reaches its own
threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catdog._rules import UNKNOWN, check_printable_class_names, is_unknown
from catdog.deploy.labels import numbered_class_names
from catdog.errors import InvalidArgumentError

LABEL_SEPARATOR = ";"
"""What joins a multi-label prediction's classes in its ``class_name``."""

DEFAULT_CLASS_THRESHOLD = 0.5
"""A multi-label model's threshold of a class until thresholds are fitted."""


@dataclass
class Prediction:
    """The most likely class of one image, its probability, and every class's probability.

    For a model with an ``unknown`` answer (see
    [`calibrate`][catdog.training.calibration.calibrate]), ``ood_score`` is the image's
    out-of-distribution score (higher: less like the training images) and ``unknown`` whether
    it is above the model's threshold; ``class_name`` is then ``"unknown"``, while
    ``probability`` and ``probabilities`` still give the classes' probabilities.

    For a multi-label model, ``labels`` lists every class the image shows (its probability
    reaches the class's threshold; none is an answer too) and ``class_name`` joins them with
    ``;`` (``""`` for none); ``probability`` is the highest class probability. ``labels`` is
    ``None`` for a single-label model.

    ``error`` is ``None`` for a scored image; for a file that could not be read, why (then
    ``class_name`` is ``""``, the probabilities and ``ood_score`` NaN).
    """

    path: str
    class_name: str
    probability: float
    probabilities: dict[str, float]
    ood_score: float | None = None
    unknown: bool = False
    error: str | None = None
    labels: list[str] | None = None


def class_thresholds_of(model) -> list[float] | None:
    """A multi-label model's threshold per class (a Keras model's or a LiteRT file's; 0.5 each
    until fitted); ``None`` for a single-label model.

    Examples:
        >>> class_thresholds_of(object()) is None
        True
    """
    if getattr(model, "multi_label", False) is not True:
        return None
    found = getattr(model, "class_thresholds", None)
    if found:
        return [float(t) for t in found]
    return [DEFAULT_CLASS_THRESHOLD] * int(model.output_shape[-1])


def named_predictions(
    probabilities: np.ndarray,
    class_names: Sequence[str] | None,
    paths: Sequence[str] | None,
    *,
    first: int = 0,
    scores: np.ndarray | None = None,
    threshold: float | None = None,
    class_thresholds: Sequence[float] | None = None,
) -> list[Prediction]:
    """One [`Prediction`][catdog.deploy.prediction.Prediction] per row of ``probabilities``;
    without ``paths``, images are named ``image_<first + row>``; an image whose score is above
    ``threshold`` is named ``unknown``; with ``class_thresholds`` (a multi-label model), every
    class whose probability reaches its threshold is in ``labels``.

    Examples:
        >>> found = named_predictions(np.array([[0.9, 0.7]]), ["cats", "dogs"], None,
        ...                           class_thresholds=[0.5, 0.8])
        >>> found[0].labels, found[0].class_name
        (['cats'], 'cats')
    """
    count = probabilities.shape[1]
    class_names = list(class_names or numbered_class_names(count))
    check_printable_class_names(class_names)
    if len(class_names) != count:
        raise InvalidArgumentError(
            f"The model predicts {count} classes but {len(class_names)} class names were given."
        )
    past = np.zeros(len(probabilities), bool) if threshold is None or scores is None else None
    past = is_unknown(scores, threshold) if past is None else past
    results = []
    for i, row in enumerate(probabilities):
        best, score = int(row.argmax()), None if scores is None else float(scores[i])
        unknown = bool(past[i] or not np.isfinite(row).all())
        labels = _shown(row, class_names, class_thresholds, unknown)
        name = LABEL_SEPARATOR.join(labels) if labels is not None else class_names[best]
        results.append(
            Prediction(
                path=paths[i] if paths else f"image_{first + i}",
                class_name=UNKNOWN if unknown else name,
                probability=float(row[best]),
                probabilities={n: float(p) for n, p in zip(class_names, row, strict=True)},
                ood_score=score,
                unknown=unknown,
                labels=labels,
            )
        )
    return results


def _shown(row, class_names, class_thresholds, unknown: bool) -> list[str] | None:
    """The classes a multi-label answer shows (none when unknown); ``None`` for single-label."""
    if class_thresholds is None:
        return None
    if unknown:
        return []
    return [n for n, p, t in zip(class_names, row, class_thresholds, strict=True) if p >= t]
