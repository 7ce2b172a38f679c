"""What a run folder records and how it is read back: ``config.json`` (checked field by field),
the split's file fingerprints and the versions of the libraries."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from catdog._rules import (
    is_int,
)
from catdog.errors import InvalidArgumentError


def read_run_file(path: str | os.PathLike):
    """The JSON value of a run folder's file, or ``None`` when there is no such file.

    A file that is not valid JSON (edited by hand, or damaged) raises
    [`InvalidArgumentError`][catdog.errors.InvalidArgumentError] naming it: catdog writes
    its files atomically, so it never leaves one half written.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InvalidArgumentError(
            f"{str(path)!r} is not valid JSON ({str(error).splitlines()[0]}); it was edited or "
            "damaged. Restore it, or write it again (catdog train into a new --out)."
        ) from None


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_fingerprint(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(f, dict)
        and is_int(f.get("count"), minimum=0)
        and isinstance(f.get("sha256"), str)
        and isinstance(f.get("per_class", {}), dict)
        for f in value.values()
    )


_RECORD_FIELDS = {  # name: (check, what it must be, required)
    "data": (lambda v: isinstance(v, str) and v != "", "a data folder (a string)", True),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", True),
    "model": (lambda v: isinstance(v, str) and v != "", "a model name (a string)", True),
    "class_names": (_is_str_list, "a list of class names", False),
    "splits": (_is_fingerprint, "an object of {count, sha256} per split", False),
}


def run_record(folder: str | os.PathLike) -> dict | None:
    """The ``config.json`` of a catdog run folder, or ``None`` if there is none (or not ours).

    The fields read back (``data``, ``seed``, ``model``, ``class_names``, ``splits``) are
    checked: a file edited by hand into another type (``"seed": "7"``) raises
    [`InvalidArgumentError`][catdog.errors.InvalidArgumentError] naming the file and the
    field. A JSON object with none of ``data``, ``seed`` and ``splits`` is not a catdog
    record.

    Examples:
        ```python
        run_record("runs/demo")["seed"]
        # 1337
        ```
    """
    path = Path(folder) / "config.json"
    record = read_run_file(path)
    if not isinstance(record, dict) or not {"data", "seed", "splits"} & set(record):
        return None
    for name, (check, expected, required) in _RECORD_FIELDS.items():
        if name not in record and not required:
            continue
        if name not in record or not check(record[name]):
            found = "it is missing" if name not in record else f"got {json.dumps(record[name])}"
            raise InvalidArgumentError(
                f"{str(path)!r}: field {name!r} must be {expected}, {found[:80]}; the file "
                "was edited or damaged. Restore it (catdog train wrote it)."
            )
    return record


def split_fingerprint(splits) -> dict:
    """Per split: the number of files (also per class) and a SHA-256 of their names.

    Two runs with the same fingerprint trained and scored on the same files.

    Examples:
        ```python
        split_fingerprint(splits)["test"]["count"]
        # 200
        ```
    """
    every = [p for split in splits.files.values() for p in split]
    root = os.path.commonpath(every) if every else ""
    result = {}
    for split, files in splits.files.items():
        names = sorted(os.path.relpath(p, root) for p in files)  # relative to the data
        digest = hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()
        labels = splits.labels[split]
        per_class = {n: labels.count(i) for i, n in enumerate(splits.class_names)}
        result[split] = {"count": len(files), "per_class": per_class, "sha256": digest}
    return result


def splits_match(recorded: dict | None, current: dict) -> bool:
    """True when two split fingerprints name the same files (counts and SHA-256 per split)."""
    if not isinstance(recorded, dict):
        return False

    def core(fingerprint: dict) -> dict:
        return {s: (f.get("count"), f.get("sha256")) for s, f in fingerprint.items()}

    return core(recorded) == core(current)


def versions() -> dict:
    """The versions of catdog, Keras, TensorFlow, NumPy and Python in use."""
    import platform

    import keras
    import numpy
    import tensorflow

    import catdog

    return {
        "catdog": catdog.__version__,
        "keras": keras.__version__,
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
