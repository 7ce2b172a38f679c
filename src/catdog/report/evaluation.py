"""Evaluation reports and predictions on image files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from catdog._rules import (
    check_choice,
    check_printable_class_names,
    check_single_label,
    check_single_label_data,
)
from catdog.data.pipelines import Splits, data_folder
from catdog.deploy.predict import TTA_MODES, Predictor, as_predictor, predict_scores
from catdog.errors import InvalidArgumentError
from catdog.io import write_json, write_text
from catdog.models.classifier import class_names_of
from catdog.models.confidence import confidence_layer, unknown_threshold
from catdog.report._report_fields import checked_report_fields
from catdog.report.intervals import wilson_interval  # also importable from here, as before
from catdog.report.reliability import risk_coverage


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
    were given. Scored on a [`Splits`][catdog.data.pipelines.Splits], ``data`` is the data folder
    and
    each ``path`` is relative to it (so a run's report and ``catdog evaluate``'s name the
    same files the same way, wherever the data lives;
    [`path_of`][catdog.report.evaluation.Report.path_of]
    gives the full path). ``engine`` is where the model ran (``"tensorflow"`` or
    ``"litert"``, whose outputs differ in the last digits; ``None`` in reports written before
    catdog recorded it). For a model with an ``unknown`` answer, ``unknown`` holds its
    ``method``, ``threshold``, and how many images were ``accepted`` (their score within the
    threshold) and ``accepted_correct``: see ``coverage``, ``accepted_accuracy`` and
    ``accepted_interval``. ``risk_coverage`` is the
    [risk-coverage curve][catdog.report.reliability.risk_coverage] (by the model's score, else by
    its top probability); ``calibration`` what a run's calibration changed (ECE, NLL, Brier
    before and after; ``None`` for ``evaluate``); ``timings`` where a run's time went (seconds
    per phase and ``total``; ``None`` for ``evaluate``).
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
    unknown: dict | None = None
    risk_coverage: list | None = None
    calibration: dict | None = None
    timings: dict | None = None

    @property
    def coverage(self) -> float | None:
        """The share of images accepted (not ``unknown``), or ``None`` without a threshold."""
        return self.unknown["accepted"] / self.count if self.unknown and self.count else None

    @property
    def accepted_accuracy(self) -> float | None:
        """The accuracy on the accepted images (``None`` without a threshold or none accepted)."""
        found = self.unknown
        return (
            found["accepted_correct"] / found["accepted"] if found and found["accepted"] else None
        )

    @property
    def accepted_interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of ``accepted_accuracy``."""
        found = self.unknown
        if not found or not found["accepted"]:
            return None
        return wilson_interval(found["accepted_correct"], found["accepted"])

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
        interval, accepted = self.accuracy_interval, self.accepted_interval
        return {
            **asdict(self),
            "accuracy_ci95": list(interval) if interval else None,
            "coverage": self.coverage,
            "accepted_accuracy": self.accepted_accuracy,
            "accepted_accuracy_ci95": list(accepted) if accepted else None,
        }

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
        values = checked_report_fields(data, source)
        values["per_class"] = {k: ClassMetrics(**v) for k, v in values["per_class"].items()}
        values["misclassified"] = [Misclassified(**m) for m in values["misclassified"]]
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
        lines += _confidence_lines(self)
        if self.misclassified:
            lines += ["", f"misclassified: {len(self.misclassified)} (most confident first)"]
            for m in self.misclassified[:10]:
                lines.append(f"  {m.path or '?'}: {m.true} -> {m.predicted} ({m.confidence:.2f})")
        return "\n".join(lines)


def _confidence_lines(report: Report) -> list[str]:
    """The report's lines on its unknown answer, risk-coverage and calibration (if any)."""
    lines = []
    found = report.unknown
    if found:
        low_high = report.accepted_interval
        sure = f" (95% interval {low_high[0]:.1%} to {low_high[1]:.1%})" if low_high else ""
        lines += ["", f"unknown: {report.count - found['accepted']} of {report.count} images past "
                  f"the threshold ({found['method']} score > {found['threshold']:.4g}); coverage "
                  f"{report.coverage:.1%}; accuracy on the accepted "
                  f"{report.accepted_accuracy or 0:.2%} ({found['accepted_correct']}/"
                  f"{found['accepted']}){sure}"]  # fmt: skip
    if report.risk_coverage:
        shown = [p for p in report.risk_coverage if p[0] in _round_coverages(report.risk_coverage)]
        lines.append("risk-coverage: " + ", ".join(f"{r:.1%} at {c:.0%}" for c, r in shown))
    if report.calibration:
        lines += ["", f"calibration: {report.calibration.get('summary', '')}"]
    return lines


def _round_coverages(pairs: list) -> set:
    """The coverages of the curve nearest to 50%, 80%, 90%, 95% and 100%."""
    return {min((p[0] for p in pairs), key=lambda c: abs(c - t)) for t in (0.5, 0.8, 0.9, 0.95, 1)}


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
    model: keras.Model | Predictor,
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
    [`Predictor`][catdog.deploy.predict.Predictor] says (``"litert"`` is faster on a CPU), a
    new one each call (or the ``Predictor`` given as ``model``, on its own engine);
    ``tta="flip"`` scores the average of each image's and its mirror image's probabilities.

    Args:
        model: the model to score, or a ``Predictor`` of it.
        data (Splits | tf.data.Dataset): a batched ``(images, labels)`` dataset, or a ``Splits``.
        class_names: the class names in label order (default: the ``Splits``' own).
        files: the dataset's files in order, to name misclassified ones (a ``Splits`` knows them).
        split: which split of a ``Splits`` to score: ``"train"``, ``"validation"`` or ``"test"``.
        engine: ``"tensorflow"``, ``"litert"`` or ``"auto"`` (see ``Predictor``).
        tta: ``"flip"`` for test-time augmentation, or ``None``.

    Examples:
        ```python
        report = evaluate(model, splits)
        print(report)
        ```
    """
    data, class_names, files, folder = _labelled_data(data, class_names, files, split)
    predictor, model = model, model.model if isinstance(model, Predictor) else model
    _check_class_names(model, class_names)
    check_choice("tta", tta, TTA_MODES)  # before the engine is made
    predictor = as_predictor(predictor, engine)
    probs, labels, scores = _probabilities_and_labels(predictor, data, tta)
    return _report(model, probs, labels, scores, class_names, files, folder, predictor.engine)


def report_of_outputs(
    model: keras.Model,
    splits: Splits,
    probs: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    split: str = "test",
    engine: str = "tensorflow",
) -> Report:
    """The [`Report`][catdog.report.evaluation.Report] of ``model``'s outputs on ``splits``'
    ``split``, computed before (by a run's calibration, from the base's features): ``probs``,
    ``scores`` (or ``None``) and ``labels`` in file order; ``engine`` ran the model.

    Examples:
        ```python
        _, after, labels = calibration.probabilities["test"]
        report = report_of_outputs(model, splits, after, labels, calibration.scores["test"])
        ```
    """
    data, class_names, files, folder = _labelled_data(splits, None, None, split)
    _check_class_names(model, class_names)
    labels = np.asarray(labels).reshape(-1).astype(int)
    return _report(model, np.asarray(probs), labels, scores, class_names, files, folder, engine)


def _report(model, probs, labels, scores, class_names, files, folder, engine: str) -> Report:
    """The report of the outputs of ``model`` (probabilities, unknown scores) on labelled
    images."""
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
    return Report(
        loss=loss,
        accuracy=float(np.mean(predicted == labels)),
        baseline=float(np.bincount(labels, minlength=n_classes).max() / labels.size),
        class_names=list(class_names),
        per_class=_per_class_metrics(confusion, class_names),
        confusion=confusion.tolist(),
        misclassified=_misclassified(probs, labels, class_names, files),
        count=int(labels.size),
        engine=engine,  # the one that ran ("auto" resolved)
        data=folder,
        unknown=_unknown_counts(model, scores, predicted == labels),
        risk_coverage=_risk_coverage(probs, scores, predicted == labels),
    )


def _unknown_counts(model, scores, correct) -> dict | None:
    """The model's unknown answer on the images: method, threshold, accepted (and correct)."""
    threshold = unknown_threshold(model)
    if scores is None or threshold is None:
        return None
    accepted = scores <= np.float32(threshold)
    return {
        "method": confidence_layer(model).method,
        "threshold": threshold,
        "accepted": int(accepted.sum()),
        "accepted_correct": int((accepted & correct).sum()),
    }


def _risk_coverage(probs, scores, correct) -> list:
    """The risk-coverage curve by the model's score, else by one minus its top probability."""
    return risk_coverage(correct, 1 - probs.max(axis=1) if scores is None else scores)


def _labelled_data(data, class_names, files, split: str):
    """``(dataset, class names, files, data folder)``: a ``Splits``' ``split`` with its class
    names and files relative to its folder, or the arguments as given (folder ``None``)."""
    if not isinstance(data, Splits):
        return data, class_names, files, None
    check_single_label_data(data, "evaluate")
    folder = data_folder(data)
    files = [os.path.relpath(os.path.abspath(p), folder) for p in data.files[split]]
    return getattr(data, split), class_names or data.class_names, files, folder


def _check_class_names(model: keras.Model, class_names) -> None:
    """Raise unless there are printable class names, and the model's when it knows them."""
    check_single_label(model, "evaluate")
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


def _probabilities_and_labels(predictor: Predictor, data, tta: str | None):
    """The model's probabilities and the labels of every example, read in one pass."""
    batches = [(*predict_scores(predictor, x, tta=tta), np.asarray(y).reshape(-1)) for x, y in data]
    if not batches:  # one pass: images and labels stay aligned even if the data reshuffles
        raise InvalidArgumentError("Cannot evaluate on an empty dataset.")
    probs = np.concatenate([p for p, _, _ in batches])
    scores = None if batches[0][1] is None else np.concatenate([s for _, s, _ in batches])
    return probs, np.concatenate([y for _, _, y in batches]).astype(int), scores


def _misclassified(probs, labels, class_names, files) -> list[Misclassified]:
    """The wrong predictions, most confident first."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")]
    return [
        Misclassified(
            path=files[i] if files is not None else None,
            true=class_names[labels[i]],
            predicted=class_names[predicted[i]],
            confidence=float(probs[i, predicted[i]]),
        )
        for i in wrong
    ]
