"""Scoring a multi-label model on labelled images: its probabilities over a split of
multi-label data, then [`multilabel_scores`][catdog.report.multilabel_metrics.multilabel_scores]
at the model's own decision thresholds, with class names and the most confident mistakes by
file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from catdog.data.pipelines import Splits, data_folder
from catdog.deploy.predict import Predictor, as_predictor
from catdog.deploy.prediction import class_thresholds_of
from catdog.errors import InvalidArgumentError
from catdog.report.multilabel_metrics import most_confident_mistakes, multilabel_scores

if TYPE_CHECKING:
    import keras


def probabilities_and_targets(
    model: keras.Model | Predictor, dataset, *, engine: str = "tensorflow"
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities, multi-hot targets)``, both ``(images, classes)``, of every image of a
    batched ``(images, multi-hot labels)`` dataset, read in one pass.

    Examples:
        ```python
        probs, targets = probabilities_and_targets(model, splits.validation)
        ```
    """
    predictor = as_predictor(model, engine)
    probs, targets = [], []
    for images, labels in dataset:
        probs.append(predictor(np.asarray(images)))
        targets.append(np.asarray(labels, np.float32))
    if not probs:
        raise InvalidArgumentError("Cannot score a multi-label model on an empty split.")
    return np.concatenate(probs), np.concatenate(targets)


def check_multi_label_model(model: keras.Model, class_names, what: str) -> None:
    """Refuse a model that is not multi-label, or whose class names (in order) are not the
    data's: the labels file's form decides the order (its header, else sorted names)."""
    if getattr(model, "multi_label", False) is not True:
        raise InvalidArgumentError(
            f"{what} needs a multi-label model (built with multi_label=True); for one class "
            "per image, use evaluate."
        )
    known = getattr(model, "class_names", None)
    if known and list(known) != list(class_names):
        raise InvalidArgumentError(
            f"The model's classes {known} are not the data's {list(class_names)} (in order): "
            "read the labels file with class_names=model.class_names."
        )


def evaluate_multilabel(
    model: keras.Model | Predictor,
    splits: Splits,
    *,
    split: str = "test",
    engine: str = "tensorflow",
    draws: int = 1000,
) -> dict:
    """Score a multi-label model on ``splits``' ``split`` at its own thresholds: what
    [`multilabel_scores`][catdog.report.multilabel_metrics.multilabel_scores] gives, with
    ``class_names``, ``engine`` and ``mistakes`` (per class, the most confident false positives
    and false negatives, by file relative to the data folder). JSON-ready.

    Examples:
        ```python
        scores = evaluate_multilabel(model, splits)
        scores["map"], scores["exact_match"]
        ```
    """
    if not getattr(splits, "multi_label", False):
        raise InvalidArgumentError(
            "evaluate_multilabel scores multi-label data (read from a labels file); for one "
            "class per image, use evaluate."
        )
    keras_model = model.model if isinstance(model, Predictor) else model
    check_multi_label_model(keras_model, splits.class_names, "evaluate_multilabel")
    predictor = as_predictor(model, engine)
    probs, targets = probabilities_and_targets(predictor, getattr(splits, split))
    thresholds = class_thresholds_of(keras_model)  # 0.5 each until fitted
    scores = multilabel_scores(targets, probs, thresholds, draws=draws)
    folder = data_folder(splits)
    files = [os.path.relpath(os.path.abspath(p), folder) for p in splits.files[split]]
    mistakes = most_confident_mistakes(targets, probs, thresholds)
    return {
        **scores,
        "class_names": list(splits.class_names),
        "engine": predictor.engine,
        "data": folder,
        "mistakes": _named(mistakes, files, splits.class_names),
    }


def _named(mistakes: list[dict], files: list[str], class_names) -> dict:
    """The mistakes per class name, each image by its file."""
    return {
        name: {kind: [files[i] for i in found[kind]] for kind in found}
        for name, found in zip(class_names, mistakes, strict=True)
    }
