"""Predictions as rows, one per image, written as they come: CSV, JSON lines, or the
tab-separated lines ``catdog predict`` prints.

Every output is made from one dict per image,
[`prediction_row`][catdog.deploy.prediction_files.prediction_row]: a column added there
appears in every format. A file is written under a temporary name next
to it and renamed at the end, so a run that stops half-way never leaves a file that looks
complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catdog._rules import already_exists, check_class_names
from catdog.deploy.labels import resolve_class_names
from catdog.deploy.litert import LiteRTModel
from catdog.deploy.prediction import Prediction
from catdog.errors import InvalidArgumentError, OutputError
from catdog.io import atomic_path

if TYPE_CHECKING:
    import keras

OUTPUT_SUFFIXES = (".csv", ".jsonl")
"""The file types [`write_predictions`][catdog.deploy.prediction_files.write_predictions]
writes, by suffix: CSV with a header row, or JSON lines (one object per line)."""

CLASS_COLUMN_PREFIX = "probability_"
"""Each class's probability is the column ``probability_<class name>``."""

DECISION_COLUMN_PREFIX = "label_"
"""A multi-label model's decision per class (1: shown, 0: not) is ``label_<class name>``."""


def prediction_row(prediction: Prediction) -> dict:
    """The row of one prediction: ``path``, ``class`` (``unknown`` where the model says so),
    ``probability`` (the most likely class's), ``ood_score`` and ``unknown`` for a model with
    an unknown answer, ``probability_<class>`` for every class, in the model's order (for a
    multi-label model also ``label_<class>``, 1 where the image shows the class, and ``class``
    the classes shown joined by ``;``), then ``error``: ``None`` for a scored image; for a file
    that could not be read, why, with every column but ``path`` empty (``None``).

    Examples:
        ```python
        prediction_row(Prediction("cat.jpg", "cats", 0.9, {"cats": 0.9, "dogs": 0.1}))
        # {'path': 'cat.jpg', 'class': 'cats', 'probability': 0.9,
        #  'probability_cats': 0.9, 'probability_dogs': 0.1, 'error': None}
        ```
    """
    row = {
        "path": prediction.path,
        "class": prediction.class_name,
        "probability": prediction.probability,
    }
    if prediction.ood_score is not None:  # a model with an unknown answer
        row.update(ood_score=prediction.ood_score, unknown=prediction.unknown)
    row.update({CLASS_COLUMN_PREFIX + name: p for name, p in prediction.probabilities.items()})
    if prediction.labels is not None:
        shown = set(prediction.labels)
        row.update({DECISION_COLUMN_PREFIX + n: int(n in shown) for n in prediction.probabilities})
    if prediction.error is not None:  # not scored: its path and why, every other column empty
        row = {**dict.fromkeys(row), "path": prediction.path}
    row["error"] = prediction.error
    return row


def tab_separated(row: dict) -> str:
    """The line ``catdog predict`` prints for a row: its columns but the per-class ones,
    ``unknown`` (the class says it) and the empty ones, tab-separated, probabilities to 4
    decimals, the ood score as ``score <value>``, why a file could not be read as
    ``error: <why>``, a multi-label answer of no class as ``(no label)``.

    Examples:
        ```python
        tab_separated({"path": "cat.jpg", "class": "cats", "probability": 0.9})
        # 'cat.jpg\\tcats\\t0.9000'
        ```
    """
    return "\t".join(
        _printed(key, value)
        for key, value in row.items()
        if not key.startswith((CLASS_COLUMN_PREFIX, DECISION_COLUMN_PREFIX))
        and key != "unknown"  # the class says it
        and value is not None
    )


def _printed(key: str, value) -> str:
    if key == "ood_score":
        return f"score {value:.4g}"
    if key == "error":
        return f"error: {value}"
    if key == "class" and value == "":
        return "(no label)"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """The suffix of a predictions file to write, ``".csv"`` or ``".jsonl"``; raises a catdog
    error before any work for another suffix, a folder, or (without ``overwrite``) a file that
    exists, as ``catdog export`` does.

    Examples:
        ```python
        check_output_file("predictions.csv")
        # '.csv'
        ```
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InvalidArgumentError(
            f"--output {str(path)!r}: name a .csv file (comma-separated, with a header) or a "
            ".jsonl file (JSON lines), e.g. predictions.csv."
        )
    if Path(path).is_dir():
        raise OutputError(f"--output {str(path)!r} is a folder; name a file, e.g. predictions.csv.")
    if not overwrite and os.path.lexists(path):
        raise already_exists(path, "predict")
    return suffix


def write_predictions(
    predictions: Iterable[Prediction], path: str | os.PathLike, *, overwrite: bool = False
) -> int:
    """Write one row per prediction (see
    [`prediction_row`][catdog.deploy.prediction_files.prediction_row]) to ``path``, as the
    predictions come; return how many.

    ``path`` ends in ``.csv`` (a header row, then one row per image) or ``.jsonl`` (one JSON
    object per line). An existing ``path`` is refused unless ``overwrite=True``. The rows go to
    a temporary file beside ``path``, renamed to ``path`` once the last is written: a run that
    stops half-way leaves no ``path`` (and an earlier ``path`` unchanged).

    Examples:
        ```python
        write_predictions(iter_predictions(model, paths), "predictions.csv")
        # 1000
        ```
    """
    return write_rows((prediction_row(p) for p in predictions), path, overwrite=overwrite)


def write_rows(rows: Iterable[dict], path: str | os.PathLike, *, overwrite: bool = False) -> int:
    """Write rows made by [`prediction_row`][catdog.deploy.prediction_files.prediction_row]
    (from this process or another: a Ray worker's, see
    [`catdog.deploy.ray_data`][catdog.deploy.ray_data]) to ``path`` as
    [`write_predictions`][catdog.deploy.prediction_files.write_predictions] does: ``.csv`` or
    ``.jsonl``, under a temporary name renamed at the end; return how many. The CSV header is
    the first row's columns.

    Examples:
        ```python
        rows = (prediction_row(p) for p in iter_predictions(model, paths))
        write_rows(rows, "predictions.jsonl")
        # 1000
        ```
    """
    suffix = check_output_file(path, overwrite=overwrite)
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as out:
        write = _csv_rows(out) if suffix == ".csv" else _json_lines(out)
        for row in rows:
            write(row)
            count += 1
    return count


def prediction_model(
    path: str | os.PathLike, class_names: Sequence[str] | None = None
) -> tuple[keras.Model | LiteRTModel, list[str]]:
    """``(model, class names)`` as ``catdog predict`` loads them: a ``.tflite`` file as a
    [`LiteRTModel`][catdog.deploy.litert.LiteRTModel], any other file as a Keras model
    ([`load_model`][catdog.models.saving.load_model]); the names are ``class_names`` (checked),
    else the model's own ([`resolve_class_names`][catdog.deploy.labels.resolve_class_names]).

    Examples:
        ```python
        model, names = prediction_model("model.tflite")
        names
        # ['cats', 'dogs']
        ```
    """
    names = None if not class_names else check_class_names(list(class_names), "--class-names")
    if Path(path).suffix == ".tflite":
        model = LiteRTModel(path)
        if not names and model.class_names:
            check_class_names(model.class_names, repr(str(model.labels_source)))
    else:
        from catdog.models.saving import load_model

        model = load_model(path)
    return model, resolve_class_names(model, path, names)


def _csv_rows(out):
    writer = None

    def write(row: dict) -> None:
        nonlocal writer
        if writer is None:  # the header: the first row's columns
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)

    return write


def _json_lines(out):
    def write(row: dict) -> None:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")

    return write
