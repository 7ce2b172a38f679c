"""Evaluation reports and predictions on image files."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from catdog.data.pipelines import Splits
from catdog.deploy.predict import predict_probabilities, predictor_for
from catdog.errors import InvalidArgumentError
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


@dataclass
class Report:
    """Scores of a model on one labelled dataset.

    ``confusion[i][j]`` counts examples of class i predicted as class j. ``misclassified``
    is sorted by confidence, most confidently wrong first; ``path`` is known when the files
    were given. Scored on a [`Splits`][catdog.data.pipelines.Splits], ``data`` is the data folder
    and
    each ``path`` is relative to it (so a run's report and ``catdog evaluate``'s name the
    same files the same way, wherever the data lives;
    [`path_of`][catdog.report.evaluation.Report.path_of]
    gives the full path). ``engine`` is where the model ran (``"tensorflow"`` or
    ``"litert"``, whose outputs differ in the last digits; ``None`` in reports written before
    catdog recorded it).
    """

    loss: float
    accuracy: float
    baseline: float
    class_names: list[str]
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    misclassified: list[Misclassified] = field(default_factory=list)
    count: int = 0
    engine: str | None = None
    data: str | None = None

    @property
    def correct(self) -> int:
        """The number of correctly classified examples."""
        return int(round(self.accuracy * self.count))

    @property
    def accuracy_interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of the accuracy (``None`` for an empty report)."""
        return wilson_interval(self.correct, self.count) if self.count else None

    def to_dict(self) -> dict:
        """The report as plain data (what ``report.json`` holds), with the 95% interval."""
        interval = self.accuracy_interval
        return {**asdict(self), "accuracy_ci95": list(interval) if interval else None}

    def path_of(self, item: Misclassified) -> str | None:
        """The full path of a misclassified file (its ``path`` joined to ``data``)."""
        return None if item.path is None else os.path.join(self.data or "", item.path)

    @classmethod
    def from_dict(cls, data: dict, source: str = "report.json") -> Report:
        """The report that [`to_dict`][catdog.report.evaluation.Report.to_dict] (or report.json)
        holds.

        Every field is checked: a field missing or of the wrong type (a hand-edited file)
        raises [`InvalidArgumentError`][catdog.errors.InvalidArgumentError] naming ``source``
        and the field. Reports written before ``engine`` and ``data`` existed read as
        ``None`` for them.

        Examples:
            ```python
            data = json.loads(Path("runs/demo/report.json").read_text())
            report = Report.from_dict(data)
            ```
        """
        return cls(**_checked_report(data, source))

    def save(self, folder: str | os.PathLike, stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.txt`` (the table) and ``stem.json`` atomically into ``folder``."""
        folder = Path(folder)
        return (
            write_text(folder / f"{stem}.txt", str(self) + "\n"),
            write_json(folder / f"{stem}.json", self.to_dict()),
        )

    def __str__(self) -> str:
        width = max(12, *(len(n) for n in self.class_names))
        interval = self.accuracy_interval
        how_sure = (
            f" ({self.correct}/{self.count}; 95% interval {interval[0]:.1%} to {interval[1]:.1%})"
            if interval
            else ""
        )
        lines = [
            f"examples: {self.count}   loss: {self.loss:.4f}   accuracy: {self.accuracy:.2%}"
            f"{how_sure}   majority baseline: {self.baseline:.2%}",
            "",
            f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9} "
            f"{'recalled':>9}",
        ]
        for i, (name, m) in enumerate(self.per_class.items()):
            recalled = f"{self.confusion[i][i]}/{m.support}"
            lines.append(
                f"{name:<{width}} {m.precision:>9.3f} {m.recall:>9.3f} {m.f1:>9.3f} "
                f"{m.support:>9d} {recalled:>9}"
            )
        missing = [name for name, m in self.per_class.items() if not m.support]
        if missing:
            lines.append(f"no examples of: {', '.join(missing)} (their scores mean nothing)")
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        lines.append(" " * width + "".join(f"{n[:9]:>10}" for n in self.class_names))
        for name, row in zip(self.class_names, self.confusion, strict=True):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>10d}" for v in row))
        if self.misclassified:
            lines += ["", f"misclassified: {len(self.misclassified)} (most confident first)"]
            for m in self.misclassified[:10]:
                lines.append(f"  {m.path or '?'}: {m.true} -> {m.predicted} ({m.confidence:.2f})")
        return "\n".join(lines)


_MISSING = object()


def _bad_field(source: str, name: str, expected: str, value=None, missing: bool = False):
    shown = "it is missing" if missing else f"got {_json_text(value)[:60]}"
    return InvalidArgumentError(
        f"{source}: field {name!r} must be {expected}, {shown}. Restore the file, or write it "
        "again (catdog train, or catdog evaluate --out)."
    )


def _json_text(value) -> str:
    """``value`` as JSON text (how it looks in the file), for error messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _checked_report(data, source: str) -> dict:
    """The fields of a report dict, checked (see ``Report.from_dict``)."""
    from catdog._rules import is_int

    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"{source} does not hold a report (a JSON object). Restore the file, or write it "
            "again (catdog train, or catdog evaluate --out)."
        )

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def get(name: str, check, expected: str, default=_MISSING):
        if name not in data:
            if default is _MISSING:
                raise _bad_field(source, name, expected, missing=True)
            return default
        if not check(data[name]):
            raise _bad_field(source, name, expected, data[name])
        return data[name]

    names = get(
        "class_names",
        lambda v: isinstance(v, list) and v and all(isinstance(n, str) for n in v),
        "a list of class names",
    )
    n = len(names)
    values = {
        "loss": get("loss", lambda v: v is None or number(v), "a number or null"),
        "accuracy": get("accuracy", number, "a number"),
        "baseline": get("baseline", number, "a number"),
        "class_names": names,
        "count": get("count", lambda v: is_int(v, minimum=0), "an integer >= 0", 0),
        "engine": get("engine", lambda v: v is None or isinstance(v, str), "a string", None),
        "data": get("data", lambda v: v is None or isinstance(v, str), "a string", None),
    }
    values["loss"] = float("nan") if values["loss"] is None else values["loss"]
    metric_keys = {"precision", "recall", "f1", "support"}
    per_class = get(
        "per_class",
        lambda v: (
            isinstance(v, dict)
            and list(v) == names
            and all(
                isinstance(m, dict)
                and set(m) == metric_keys
                and all(number(m[k]) for k in ("precision", "recall", "f1"))
                and is_int(m["support"], minimum=0)
                for m in v.values()
            )
        ),
        "an object of precision, recall, f1 and support per class, in class_names order",
    )
    values["per_class"] = {k: ClassMetrics(**v) for k, v in per_class.items()}
    values["confusion"] = get(
        "confusion",
        lambda v: (
            isinstance(v, list)
            and len(v) == n
            and all(
                isinstance(row, list) and len(row) == n and all(is_int(c, minimum=0) for c in row)
                for row in v
            )
        ),
        f"a {n}x{n} list of counts (one row per class)",
    )
    wrong_keys = {"path", "true", "predicted", "confidence"}
    misclassified = get(
        "misclassified",
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(m, dict)
                and set(m) == wrong_keys
                and (m["path"] is None or isinstance(m["path"], str))
                and isinstance(m["true"], str)
                and isinstance(m["predicted"], str)
                and number(m["confidence"])
                for m in v
            )
        ),
        "a list of {path, true, predicted, confidence}",
        [],
    )
    values["misclassified"] = [Misclassified(**m) for m in misclassified]
    return values


def compare_reports(first: Report, second: Report, names: Sequence[str] = ("A", "B")) -> str:
    """One sentence: how two accuracies differ, and whether by more than their 95% intervals.

    Non-overlapping Wilson intervals mean the difference is larger than the test split's
    noise; overlapping ones mean this test split cannot tell the two apart (a conservative
    reading).

    Examples:
        ```python
        compare_reports(report_a, report_b, names=("transfer", "baseline"))
        # 'transfer 97.5% (87.1% to 99.6%) vs baseline 72.5% (57.2% to 83.9%): +25.0 points; ...'
        ```
    """
    (a_low, a_high), (b_low, b_high) = first.accuracy_interval, second.accuracy_interval
    difference = (first.accuracy - second.accuracy) * 100
    overlap = a_low <= b_high and b_low <= a_high
    verdict = (
        "the 95% intervals overlap: this test split cannot tell them apart"
        if overlap
        else "larger than the 95% intervals"
    )
    return (
        f"{names[0]} {first.accuracy:.1%} ({a_low:.1%} to {a_high:.1%}) vs {names[1]} "
        f"{second.accuracy:.1%} ({b_low:.1%} to {b_high:.1%}): {difference:+.1f} points; "
        f"{verdict}."
    )


def _per_class_metrics(confusion: np.ndarray, class_names) -> dict[str, ClassMetrics]:
    """Precision, recall, F1 and support of each class, from a confusion matrix."""
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(
            float(precision), float(recall), float(f1), int(confusion[i].sum())
        )
    return per_class


def evaluate(
    model: keras.Model,
    data,
    class_names: Sequence[str] | None = None,
    *,
    files: Sequence[str] | None = None,
    split: str = "test",
    engine: str = "tensorflow",
    tta: str | None = None,
) -> Report:
    """Score ``model`` on a labelled dataset and return a
    [`Report`][catdog.report.evaluation.Report].

    ``data`` is a batched ``(images, labels)`` dataset (then pass ``class_names``, and
    ``files`` in dataset order to name misclassified files) or a
    [`catdog.Splits`][catdog.data.pipelines.Splits], whose ``split`` (default ``"test"``) is used
    with its
    class names and files. ``engine`` runs the model as
    [`Predictor`][catdog.deploy.predict.Predictor] says (``"litert"`` is faster on a CPU);
    ``tta="flip"`` scores the average of each image's and its mirror image's probabilities.

    Examples:
        ```python
        report = evaluate(model, splits)
        print(report)
        ```
    """
    from catdog._rules import check_printable_class_names
    from catdog.models.classifier import class_names_of

    folder = None
    if isinstance(data, Splits):
        class_names = class_names or data.class_names
        folder = data_folder(data)
        files = [os.path.relpath(os.path.abspath(p), folder) for p in data.files[split]]
        data = getattr(data, split)
    known = class_names_of(model)
    if known and class_names and list(class_names) != known:
        raise InvalidArgumentError(
            f"The model's classes are {known}, but the data's are {list(class_names)}. Build "
            "the data with class_names=model.class_names (from_directory matches folders by "
            "name)."
        )
    if not class_names:
        raise InvalidArgumentError("evaluate needs class_names (or a Splits object).")
    check_printable_class_names(class_names)
    batches = [
        (predict_probabilities(model, x, engine, tta), np.asarray(y).reshape(-1)) for x, y in data
    ]
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
    per_class = _per_class_metrics(confusion, class_names)
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
        engine=predictor_for(model, engine).engine,  # the one that ran ("auto" resolved)
        data=folder,
    )


def data_folder(splits: Splits) -> str:
    """The folder of a [`Splits`][catdog.data.pipelines.Splits]' files, absolute: the folder holding
    all of them (every split's)."""
    every = [os.path.abspath(p) for files in splits.files.values() for p in files]
    return os.path.commonpath(every) if every else os.path.abspath(".")
