"""The callbacks ``train`` adds: the best checkpoint, written atomically and never from
non-finite weights, and the resume state (weights and epoch record, written atomically)."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from catdog._rules import (
    monitor_mode,
)
from catdog.deploy.export import save_model
from catdog.io import read_json, sha256sum, write_atomic, write_json
from catdog.training.distribute import (
    agree,
)

if TYPE_CHECKING:
    pass


logger = logging.getLogger("catdog")


def weights_are_finite(model: keras.Model) -> bool:
    """True when every weight of ``model`` is a finite number (no NaN, no infinity).

    Examples:
        ```python
        weights_are_finite(model)
        # True
        ```
    """
    return all(np.isfinite(w).all() for w in model.get_weights())


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the whole model atomically whenever ``monitor`` improves.

    Examples:
        ```python
        model.fit(ds, callbacks=[BestModelCheckpoint("best.keras")])
        ```
    """

    def __init__(
        self, path: str | os.PathLike, monitor: str = "val_accuracy", best=None, model_to_save=None
    ):
        super().__init__()
        self.path, self.monitor, self.model_to_save = Path(path), monitor, model_to_save
        self.mode = monitor_mode(monitor)
        self.best = best

    def _improved(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        model = self.model_to_save or self.model
        if self._improved(float(value)) and weights_are_finite(model):
            self.best = float(value)
            save_model(model, self.path)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` with crash-safe state files.

    Keras rewrites ``latest.weights.h5`` in place, so a process killed during that write
    leaves a torn file that breaks every later resume. Here each state file is written to a
    temporary name and renamed into place, and the epoch record names the SHA-256 of the
    weights file it belongs to. A torn or mismatched state is detected on resume: a warning
    names it, the model's weights are left as they were, the files in ``reset_also`` (a
    history log of the discarded epochs) are removed, and the stage starts again from its
    first epoch.

    Examples:
        ```python
        model.fit(ds, callbacks=[AtomicBackupAndRestore("backup")])
        ```
    """

    def __init__(self, backup_dir, *, reset_also=(), restore_from=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.reset_also = [Path(p) for p in reset_also]
        # a worker other than the chief resumes from the chief's state (on shared storage),
        # so that every worker of the cluster starts again from the same epoch
        self.restore_from = restore_from

    # Keras' BackupAndRestore has no public hook for how it writes its state: these override
    # its private _save_model/_load_model (and read its private path attributes).
    def _save_model(self):
        digest = []

        def save(tmp):
            self.model.save_weights(str(tmp))
            digest.append(sha256sum(tmp))

        write_atomic(self._weights_path, save)
        write_json(
            self._training_metadata_path,
            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "sha256": digest[0]},
        )

    def _load_model(self):
        own = self._weights_path, self._training_metadata_path
        if self.restore_from is not None:
            self._weights_path, self._training_metadata_path = (
                str(Path(self.restore_from) / Path(path).name) for path in own
            )
        try:
            metadata = read_json(self._training_metadata_path)
            if Path(self._weights_path).exists() or metadata is not None:
                recorded = metadata.get("sha256") if isinstance(metadata, dict) else None
                if recorded != sha256sum(self._weights_path):
                    raise ValueError("the weights file and the epoch record do not belong together")
            super()._load_model()
        finally:
            self._weights_path, self._training_metadata_path = own

    def on_train_begin(self, logs=None):
        weights = self.model.get_weights()
        try:
            super().on_train_begin(logs)
        except Exception as error:  # torn files: h5py's OSError, JSON's ValueError, ...
            logger.warning(
                "The resume state in %s could not be read (%s: %s); it was probably torn by a "
                "crash while being written. This training stage starts again from its first "
                "epoch.",
                self.backup_dir,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            self.model.set_weights(weights)
            self.model._initial_epoch = None  # Keras' resume hook (private; super() sets it)
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            for path in self.reset_also:
                path.unlink(missing_ok=True)
        epoch = getattr(self.model, "_initial_epoch", None) or 0
        agree(self.model.distribute_strategy, epoch, "the epoch to resume from")

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        # Keras never clears the resume epoch it set: a later fit of this model (the
        # fine-tuning stage) would start from it instead of its own initial_epoch
        self.model._initial_epoch = None


def _as_float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):  # CSVLogger writes "NA" for a metric an epoch lacks
        return math.nan


def _read_history_csv(path: Path) -> dict[str, list[float]]:
    """Read a CSVLogger file, keeping the last row of each epoch (a resumed epoch reruns)."""
    if not path.exists():
        return {}
    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("epoch", "").isdigit():
                rows[int(row["epoch"])] = row
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key != "epoch":
                history.setdefault(key, []).append(_as_float(value))
    return history


def _best_of(values, monitor: str):
    """The best of ``monitor`` values (lowest for a loss), ignoring None/NaN; None if none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return min(values) if monitor_mode(monitor) == "min" else max(values)
