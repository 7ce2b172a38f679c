"""Evaluation reports and predictions on image files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from catdog.data import Splits
from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.io import write_json, write_text


@dataclass
class ClassMetrics:
    """Precision, recall and F1 of one class, and its number of examples (``support``)."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Misclassified:
    """One wrong prediction: the file (when known), true and predicted class, confidence."""

    path: str | None
    true: str
    predicted: str
    confidence: float


@dataclass
class Report:
    """Scores of a model on one labelled dataset.

    ``confusion[i][j]`` counts examples of class i predicted as class j. ``misclassified``
    is sorted by confidence, most confidently wrong first; ``path`` is known when the files
    were given.
    """

    loss: float
    accuracy: float
    baseline: float
    class_names: list[str]
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    misclassified: list[Misclassified] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict:
        """The report as plain data (what ``report.json`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """The report that [`to_dict`][catdog.evaluation.Report.to_dict] (or report.json) holds.

        Examples:
            ```python
            data = json.loads(Path("runs/demo/report.json").read_text())
            report = Report.from_dict(data)
            ```
        """
        values = dict(data)
        values["loss"] = float("nan") if values.get("loss") is None else values["loss"]
        values["per_class"] = {k: ClassMetrics(**v) for k, v in values["per_class"].items()}
        values["misclassified"] = [Misclassified(**m) for m in values.get("misclassified", [])]
        return cls(**values)

    def save(self, folder: str | os.PathLike, stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.txt`` (the table) and ``stem.json`` atomically into ``folder``."""
        folder = Path(folder)
        return (
            write_text(folder / f"{stem}.txt", str(self) + "\n"),
            write_json(folder / f"{stem}.json", self.to_dict()),
        )

    def __str__(self) -> str:
        width = max(12, *(len(n) for n in self.class_names))
        lines = [
            f"examples: {self.count}   loss: {self.loss:.4f}   accuracy: {self.accuracy:.2%}   "
            f"majority baseline: {self.baseline:.2%}",
            "",
            f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}",
        ]
        for name, m in self.per_class.items():
            lines.append(
                f"{name:<{width}} {m.precision:>9.3f} {m.recall:>9.3f} {m.f1:>9.3f} {m.support:>9d}"
            )
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        lines.append(" " * width + "".join(f"{n[:9]:>10}" for n in self.class_names))
        for name, row in zip(self.class_names, self.confusion, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>10d}" for v in row))
        if self.misclassified:
            lines += ["", f"misclassified: {len(self.misclassified)} (most confident first)"]
            for m in self.misclassified[:10]:
                lines.append(f"  {m.path or '?'}: {m.true} -> {m.predicted} ({m.confidence:.2f})")
        return "\n".join(lines)


def predict_probabilities(model: keras.Model, images) -> np.ndarray:
    """Class probabilities for an image array ``(n, h, w, 3)``, in inference mode.

    Uses the model's compiled [`catdog.inference.Predictor`][catdog.inference.Predictor]; logit
    models get a softmax.

    Examples:
        ```python
        predict_probabilities(model, images).shape
        # (32, 2)
        ```
    """
    from catdog.inference import predictor_for

    return predictor_for(model)(images).astype(np.float64)


def evaluate(
    model: keras.Model,
    data,
    class_names: Sequence[str] | None = None,
    *,
    files: Sequence[str] | None = None,
    split: str = "test",
) -> Report:
    """Score ``model`` on a labelled dataset and return a [`Report`][catdog.evaluation.Report].

    ``data`` is a batched ``(images, labels)`` dataset (then pass ``class_names``, and
    ``files`` in dataset order to name misclassified files) or a
    [`catdog.Splits`][catdog.data.Splits], whose ``split`` (default ``"test"``) is used with its
    class names and files.

    Examples:
        ```python
        report = evaluate(model, splits)
        print(report)
        ```
    """
    if isinstance(data, Splits):
        class_names = class_names or data.class_names
        files = data.files[split]
        data = getattr(data, split)
    if not class_names:
        raise InvalidArgumentError("evaluate needs class_names (or a Splits object).")
    batches = [(predict_probabilities(model, x), np.asarray(y).reshape(-1)) for x, y in data]
    if not batches:  # one pass: images and labels stay aligned even if the data reshuffles
        raise InvalidArgumentError("Cannot evaluate on an empty dataset.")
    probs = np.concatenate([p for p, _ in batches])
    labels = np.concatenate([y for _, y in batches]).astype(int)
    n_classes = len(class_names)
    if probs.shape[1] != n_classes:
        raise InvalidArgumentError(
            f"The model predicts {probs.shape[1]} classes but {n_classes} class names were "
            f"given ({list(class_names)})."
        )
    if files is not None and len(files) != labels.size:
        raise InvalidArgumentError(f"files has {len(files)} entries for {labels.size} examples.")
    predicted = probs.argmax(axis=1)
    eps = keras.config.epsilon()  # clipped as Keras clips its cross-entropy
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(labels.size), labels], eps, 1))))
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(
            float(precision), float(recall), float(f1), int(confusion[i].sum())
        )
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")]
    misclassified = [
        Misclassified(
            path=files[i] if files is not None else None,
            true=class_names[labels[i]],
            predicted=class_names[predicted[i]],
            confidence=float(probs[i, predicted[i]]),
        )
        for i in wrong
    ]
    return Report(
        loss=loss,
        accuracy=float(np.mean(predicted == labels)),
        baseline=float(np.bincount(labels, minlength=n_classes).max() / labels.size),
        class_names=list(class_names),
        per_class=per_class,
        confusion=confusion.tolist(),
        misclassified=misclassified,
        count=int(labels.size),
    )


@dataclass
class Prediction:
    """The most likely class of one image, its probability, and every class's probability."""

    path: str
    class_name: str
    probability: float
    probabilities: dict[str, float]


def load_images(paths: Sequence[str | os.PathLike], image_size: tuple[int, int]) -> np.ndarray:
    """Read image files of any size and format into a float32 ``(n, h, w, 3)`` 0..255 array.

    Uses the same decoder and resizing as the training pipeline. Raises a clear error naming
    a missing file, one that is not an image, or one over
    [`MAX_IMAGE_PIXELS`][catdog.data.MAX_IMAGE_PIXELS] (checked from its header, before any
    pixel is decoded).

    Examples:
        ```python
        load_images(["cat.jpg"], (160, 160)).shape
        # (1, 160, 160, 3)
        ```
    """
    import tensorflow as tf

    from catdog.data import _decode_fn, image_size_problem

    decode = _decode_fn(tuple(image_size))
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise InputFileNotFoundError(f"Image file {str(path)!r} does not exist.")
        problem = image_size_problem(path)
        if problem:
            raise InvalidArgumentError(f"{str(path)!r} is too large to read: {problem}.")
        try:
            image, _, _ = decode(tf.constant(str(path)), 0, 0)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            raise InvalidArgumentError(
                f"{str(path)!r} is not a readable image (BMP, GIF, JPEG, PNG or WebP expected)."
            ) from error
        images.append(image.numpy())
    return np.stack(images).astype(np.float32)


def predict(
    model: keras.Model,
    images_or_paths,
    class_names: Sequence[str] | None = None,
) -> list[Prediction]:
    """Predict the class of image files (any size/format) or of an image array.

    Returns one [`Prediction`][catdog.evaluation.Prediction] per image, with the most likely class
    name and its probability. Without ``class_names`` classes are named ``class_0``, ``class_1``...

    Examples:
        ```python
        for p in predict(model, ["cat.jpg", "dog.png"], ["cats", "dogs"]):
            print(p.path, p.class_name, round(p.probability, 3))
        ```
    """
    height, width = model.input_shape[1:3]
    if isinstance(images_or_paths, np.ndarray):
        array, names = images_or_paths.astype(np.float32), None
        if array.ndim == 3:
            array = array[None]
        if array.shape[1:] != (height, width, 3):
            raise InvalidArgumentError(
                f"images must have shape (n, {height}, {width}, 3), got {array.shape}."
            )
    else:
        names = [str(p) for p in images_or_paths]
        array = load_images(names, (height, width))
    probs = predict_probabilities(model, array)
    class_names = list(class_names or [f"class_{i}" for i in range(probs.shape[1])])
    if len(class_names) != probs.shape[1]:
        raise InvalidArgumentError(
            f"The model predicts {probs.shape[1]} classes but {len(class_names)} class names "
            "were given."
        )
    results = []
    for i, row in enumerate(probs):
        best = int(row.argmax())
        results.append(
            Prediction(
                path=names[i] if names else f"image_{i}",
                class_name=class_names[best],
                probability=float(row[best]),
                probabilities={n: float(p) for n, p in zip(class_names, row, strict=True)},
            )
        )
    return results
