"""What a run folder holds and how it is read back: [`RunFolder`][catdog.runs.record.RunFolder]
(the names of its files), ``config.json`` (checked field by field), the split's file
fingerprints and the versions of the libraries."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from catdog._rules import is_int
from catdog._version import __version__
from catdog.errors import InvalidArgumentError


@dataclass(frozen=True)
class RunFolder:
    """A run folder of ``catdog train``: the one place that names its files.

    The finished run's files are written together when training has finished (see
    [`run_training`][catdog.runs.job.run_training]); while it trains, its state lives in
    ``.resume/`` (``state``): a lock, the pending configuration, the best model so far,
    checkpoints.

    Examples:
        >>> folder = RunFolder("runs/demo")
        >>> folder.model.as_posix(), folder.pending_config.as_posix()
        ('runs/demo/model.keras', 'runs/demo/.resume/config.json')
        >>> RunFolder.of_model("runs/demo/model.keras") == folder
        True
    """

    path: Path

    MODEL: ClassVar[str] = "model.keras"
    CLASS_NAMES: ClassVar[str] = "class_names.json"
    HISTORY: ClassVar[str] = "history.json"
    REPORT_TEXT: ClassVar[str] = "report.txt"
    REPORT: ClassVar[str] = "report.json"
    SAMPLES_PLOT: ClassVar[str] = "samples.png"
    HISTORY_PLOT: ClassVar[str] = "history.png"
    CONFUSION_PLOT: ClassVar[str] = "confusion_matrix.png"
    MISCLASSIFIED_PLOT: ClassVar[str] = "misclassified.png"
    RELIABILITY_PLOT: ClassVar[str] = "reliability.png"
    RISK_COVERAGE_PLOT: ClassVar[str] = "risk_coverage.png"
    CARD: ClassVar[str] = "README.md"
    CONFIG: ClassVar[str] = "config.json"
    FILES: ClassVar[tuple[str, ...]] = (
        MODEL, CLASS_NAMES, HISTORY, REPORT_TEXT, REPORT, SAMPLES_PLOT, HISTORY_PLOT,
        CONFUSION_PLOT, MISCLASSIFIED_PLOT, RELIABILITY_PLOT, RISK_COVERAGE_PLOT, CARD,
        CONFIG,  # last: a folder whose config.json is new holds the new run whole
    )  # fmt: skip
    """The files of a finished run folder, in the order publishing swaps them in."""
    EMBEDDINGS: ClassVar[str] = "embeddings.npz"
    """Not a run's own file: the cache of its images' embeddings (see
    [`run_embeddings`][catdog.runs.embeddings.run_embeddings]), made on first use."""
    STATE: ClassVar[str] = ".resume"
    LOCK: ClassVar[str] = "lock"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of_model(cls, model_path: str | os.PathLike) -> RunFolder:
        """The run folder a model file is in (``RUN/model.keras`` -> ``RUN``)."""
        return cls(Path(model_path).parent)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    model = property(lambda self: self / self.MODEL, doc="``model.keras``: the best model.")
    config = property(lambda self: self / self.CONFIG, doc="``config.json``: the record.")
    report = property(lambda self: self / self.REPORT, doc="``report.json``: the test scores.")
    history = property(lambda self: self / self.HISTORY, doc="``history.json``.")
    class_names = property(lambda self: self / self.CLASS_NAMES, doc="``class_names.json``.")
    card = property(lambda self: self / self.CARD, doc="``README.md``: the model card.")
    embeddings = property(
        lambda self: self / self.EMBEDDINGS, doc="``embeddings.npz``: its images' embeddings."
    )
    state = property(lambda self: self / self.STATE, doc="``.resume/``: an unfinished run.")
    lock = property(lambda self: self.state / self.LOCK, doc="held while a run writes.")
    pending_config = property(
        lambda self: self.state / self.CONFIG, doc="the configuration of an unfinished run."
    )
    best = property(lambda self: self.state / "best.keras", doc="the best model so far.")

    def record(self) -> dict | None:
        """Its ``config.json``, checked (see [`run_record`][catdog.runs.record.run_record])."""
        return run_record(self.path)

    def read(self, name: str):
        """The JSON value of its file ``name``, or ``None`` (see
        [`read_run_file`][catdog.runs.record.read_run_file])."""
        return read_run_file(self / name)


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
    "image_size": (is_int, "the input side (a positive integer)", True),
    "class_names": (_is_str_list, "a list of class names", False),
    "splits": (_is_fingerprint, "an object of {count, sha256} per split", False),
    "excluded": (lambda v: v is None or _is_str_list(v), "null or a list of paths", False),
    "relabelled": (
        lambda v: (
            v is None
            or (isinstance(v, dict) and all(isinstance(x, str) for x in [*v, *v.values()]))
        ),
        "null or an object of path: class",
        False,
    ),
}


def run_record(folder: str | os.PathLike) -> dict | None:
    """The ``config.json`` of a catdog run folder, or ``None`` if there is none (or not ours).

    The fields read back (``data``, ``seed``, ``model``, ``image_size``, ``class_names``,
    ``splits``, ``excluded``) are checked: a file edited by hand into another type
    (``"seed": "7"``), or without one of the fields every run records, raises
    [`InvalidArgumentError`][catdog.errors.InvalidArgumentError] naming the file and the
    field. A JSON object with none of ``data``, ``seed`` and ``splits`` is not a catdog
    record.

    Examples:
        ```python
        run_record("runs/demo")["seed"]
        # 1337
        ```
    """
    path = RunFolder(folder).config
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

    return {
        "catdog": __version__,
        "keras": keras.__version__,
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
