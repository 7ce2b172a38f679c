"""Labels files for photos with any number of answers (multi-label data): which classes each
photo shows, none included, read from a CSV or JSON-lines file beside the photos.

Three forms, one table: a CSV ``path,labels`` with the labels of a row joined by ``;`` (an
empty cell: no label), a CSV ``path,<class>,<class>,...`` of 0/1 (the header names the classes,
in order), and JSON lines of ``{"path": ..., "labels": [...]}`` or ``{"path": ..., "<class>":
0|1, ...}``. Paths are relative to the labels file's folder, or absolute. What a run records of
a table is ``describe_label_table``."""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.errors import InputFileNotFoundError, InvalidArgumentError

LIST_SEPARATOR = ";"
"""What joins the labels of one row in the ``labels`` column of a CSV file."""


@dataclass(frozen=True)
class LabelTable:
    """The labels of a set of photos: ``rows`` maps each photo (absolute path, in file order)
    to the classes it shows (a tuple in ``class_names`` order; empty: none of them).

    Examples:
        >>> table = LabelTable(["cats", "dogs"], {"/a.jpg": ("cats", "dogs"), "/b.jpg": ()})
        >>> table.multi_hot().tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """

    class_names: list[str]
    rows: dict[str, tuple[str, ...]]
    source: str | None = None

    def multi_hot(self, paths: list[str] | None = None) -> np.ndarray:
        """``(photos, classes)`` float32 of 0/1: one row per photo of ``paths`` (default: every
        photo, in file order), 1 where it shows the class."""
        index = {name: i for i, name in enumerate(self.class_names)}
        chosen = list(self.rows) if paths is None else paths
        found = np.zeros((len(chosen), len(self.class_names)), np.float32)
        for row, path in enumerate(chosen):
            for name in self.rows[path]:
                found[row, index[name]] = 1.0
        return found


def read_label_table(path: str | os.PathLike, class_names: list[str] | None = None) -> LabelTable:
    """The [`LabelTable`][catdog.data.label_table.LabelTable] a CSV or JSON-lines file holds.

    ``class_names`` fixes the classes and their order (every label must be one of them);
    otherwise they are the header's class columns, or the labels found, sorted. Every problem
    raises one error naming the file, the row and the fix: a missing or empty file, a row
    without a path, a label not among the classes, a value other than 0/1, a photo listed
    twice, photos that do not exist, no photo with any label.

    Examples:
        ```python
        table = read_label_table("photos/labels.csv")
        table.class_names, len(table.rows)
        # (['cats', 'dogs'], 3000)
        ```
    """
    source = Path(path)
    if not source.is_file():
        raise InputFileNotFoundError(
            f"The labels file {str(source)!r} does not exist: pass a CSV (path,labels) or a "
            "JSON-lines file that names the classes each photo shows."
        )
    records = _records(source)
    if not records:
        raise InvalidArgumentError(f"The labels file {str(source)!r} lists no photo.")
    labelled = [_labels_of(record, line, source) for line, record in records]
    names = _class_names(labelled, records, class_names, source)
    rows: dict[str, tuple[str, ...]] = {}
    for (line, record), found in zip(records, labelled, strict=True):
        photo = _photo_path(record, line, source)
        if photo in rows:
            raise InvalidArgumentError(f"{_where(source, line)} lists {photo!r} a second time.")
        _check_labels(found, names, line, source)
        rows[photo] = tuple(name for name in names if name in found)
    _check_photos(rows, source)
    return LabelTable(names, rows, os.path.abspath(source))


def _records(source: Path) -> list[tuple[int, dict]]:
    """``(line number, {column: value})`` of every row of a CSV or JSON-lines file."""
    text = source.read_text(encoding="utf-8-sig")
    if source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InvalidArgumentError(
                    f"{_where(source, number)} is not a JSON object ({error.msg})."
                ) from None
            if not isinstance(record, dict):
                raise InvalidArgumentError(f"{_where(source, number)} is not a JSON object.")
            records.append((number, record))
        return records
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        return []
    return [(number, dict(row)) for number, row in enumerate(reader, start=2)]


def _labels_of(record: dict, line: int, source: Path) -> set[str]:
    """The labels of one row: its ``labels`` list, else its class columns that hold 1."""
    if "labels" in record:
        value = record["labels"]
        if isinstance(value, str):
            return {name.strip() for name in value.split(LIST_SEPARATOR) if name.strip()}
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return set(value)
        raise InvalidArgumentError(
            f"{_where(source, line)}: labels must be a list of class names (or, in a CSV, "
            f"names joined by {LIST_SEPARATOR!r}), got {value!r}."
        )
    found = set()
    for name, value in record.items():
        if name == "path":
            continue
        if str(value).strip() not in ("0", "1"):
            raise InvalidArgumentError(
                f"{_where(source, line)}: column {name!r} must be 0 or 1, got {value!r}."
            )
        if str(value).strip() == "1":
            found.add(name)
    return found


def _class_names(labelled, records, class_names, source: Path) -> list[str]:
    """The classes: as given, else the class columns in header order, else the labels found."""
    if class_names is not None:
        return list(class_names)
    first = records[0][1]
    if "labels" not in first:
        columns = [name for name in first if name != "path"]
        if columns:
            return columns
    names = sorted(set().union(*labelled))
    if not names:
        raise InvalidArgumentError(
            f"No photo of {str(source)!r} has a label: name each photo's classes (a photo "
            "with none is allowed, but some must show a class)."
        )
    return names


def _check_labels(found: set[str], names: list[str], line: int, source: Path) -> None:
    unknown = sorted(found - set(names))
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidArgumentError(
            f"{_where(source, line)}: {', '.join(map(repr, unknown))} is not one of the classes "
            f"{', '.join(names)}{hint}."
        )


def _photo_path(record: dict, line: int, source: Path) -> str:
    value = record.get("path")
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(
            f"{_where(source, line)} has no path: every row needs a 'path' (relative to the "
            "labels file's folder, or absolute)."
        )
    return os.path.abspath(os.path.join(source.parent, value.strip()))


def _check_photos(rows: dict, source: Path) -> None:
    missing = [p for p in rows if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        raise InvalidArgumentError(
            f"{len(missing)} photo(s) of {str(source)!r} do not exist, e.g. {shown}: paths are "
            "relative to the labels file's folder."
        )


def _where(source: Path, line: int) -> str:
    return f"{str(source)!r} line {line}"


def describe_label_table(table: LabelTable) -> dict:
    """A table as plain data, what a run records of it: the file (``labels``), the classes
    and a SHA-256 of the table's content (``labels_sha256``).

    Examples:
        >>> describe_label_table(LabelTable(["cats"], {"/a.jpg": ("cats",)}))["class_names"]
        ['cats']
    """
    text = json.dumps(
        {"class_names": table.class_names, "rows": {p: list(v) for p, v in table.rows.items()}},
        ensure_ascii=False,
    )
    return {
        "labels": table.source,
        "class_names": list(table.class_names),
        "labels_sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
    }
