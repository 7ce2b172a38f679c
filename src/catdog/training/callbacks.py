"""The callbacks ``train`` adds: the best checkpoint, written atomically and never from
non-finite weights, and the resume state (weights and epoch record, written atomically)."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

from catdog._rules import (
    is_int,
    monitor_mode,
)
from catdog.io import read_json, sha256sum, write_atomic, write_json
from catdog.models.saving import save_model
from catdog.training.distribute import (
    agree,
)

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


# the resume state's two files (the names Keras' BackupAndRestore gives them)
WEIGHTS_FILE, RECORD_FILE = "latest.weights.h5", "training_metadata.json"


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Crash-safe resume state: the weights and an epoch record, written after every epoch.

    Each state file is written to a temporary name and renamed into place, so a process
    killed during a write leaves the previous state, and the epoch record names the SHA-256
    of the weights file it belongs to. Call
    [`restore`][catdog.training.callbacks.AtomicBackupAndRestore.restore] before ``fit`` and
    pass the epoch it returns as ``initial_epoch``. A torn or mismatched state is detected
    there: a warning names it, the model's weights are left as they were,
    the files in ``reset_also`` (a history log of the discarded epochs) are removed, and the
    stage starts again from its first epoch. The state is deleted when training ends (unless
    ``delete_checkpoint=False``).

    The weights file is ``model.save_weights``' (layers and optimizer state), named
    ``latest.weights.h5`` beside ``training_metadata.json``, as Keras' ``BackupAndRestore``.

    Examples:
        ```python
        backup = AtomicBackupAndRestore("backup")
        start = backup.restore(model)
        model.fit(ds, epochs=10, initial_epoch=start, callbacks=[backup])
        ```
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        *,
        delete_checkpoint: bool = True,
        reset_also: Sequence[str | os.PathLike] = (),
        restore_from: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.backup_dir, self.delete_checkpoint = Path(backup_dir), delete_checkpoint
        self.reset_also = [Path(p) for p in reset_also]
        # a worker other than the chief resumes from the chief's state (on shared storage),
        # so that every worker of the cluster starts again from the same epoch
        self.restore_from = Path(restore_from) if restore_from is not None else None

    def save(self, model: keras.Model, epoch: int) -> None:
        """Write ``model``'s weights, then the record that training resumes at ``epoch``.

        Examples:
            ```python
            AtomicBackupAndRestore("backup").save(model, 3)
            ```
        """
        digest = []

        def save_weights(tmp):
            model.save_weights(str(tmp))
            digest.append(sha256sum(tmp))

        write_atomic(self.backup_dir / WEIGHTS_FILE, save_weights)
        write_json(self.backup_dir / RECORD_FILE, {"epoch": epoch, "sha256": digest[0]})

    def restore(self, model: keras.Model) -> int:
        """Load the saved state into ``model``; return the epoch to resume from (0: none).

        On a cluster every worker must find the same epoch, else
        [`ClusterError`][catdog.errors.ClusterError].

        Examples:
            ```python
            model.fit(ds, epochs=10, initial_epoch=backup.restore(model), callbacks=[backup])
            ```
        """
        weights = model.get_weights()
        try:
            epoch = _load_state(model, self.restore_from or self.backup_dir)
        except Exception as error:  # torn files: h5py's OSError, a mismatched record, ...
            logger.warning(
                "The resume state in %s could not be read (%s: %s); it was probably torn by a "
                "crash while being written. This training stage starts again from its first "
                "epoch.",
                self.backup_dir,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            model.set_weights(weights)
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            for path in self.reset_also:
                path.unlink(missing_ok=True)
            epoch = 0
        agree(model.distribute_strategy, epoch, "the epoch to resume from")
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        self.save(self.model, epoch + 1)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _load_state(model: keras.Model, folder: Path) -> int:
    """Load the weights in ``folder`` into ``model``; the epoch its record names (0: none).

    Raises ValueError when the weights and the record do not belong together.
    """
    weights, record = folder / WEIGHTS_FILE, read_json(folder / RECORD_FILE)
    if not weights.exists() and record is None:
        return 0
    recorded = record.get("sha256") if isinstance(record, dict) else None
    if recorded != sha256sum(weights):
        raise ValueError("the weights file and the epoch record do not belong together")
    if not is_int(record.get("epoch"), minimum=0):
        raise ValueError(f"the epoch record names no epoch: {record!r}")
    with model.distribute_strategy.scope():  # as in fit: a cluster's variables are mirrored
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its state is in the weights file
        model.load_weights(str(weights))
    return record["epoch"]


def _as_float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):  # CSVLogger writes "NA" for a metric an epoch lacks
        return math.nan


def read_history_csv(path: Path) -> dict[str, list[float]]:
    """Read a CSVLogger file, keeping the last row of each epoch (a resumed epoch reruns):
    ``{metric: one value per epoch}`` (NaN where an epoch lacks it), ``{}`` for no file."""
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


def best_of(values: Iterable[float | None], monitor: str) -> float | None:
    """The best of ``monitor`` values (lowest for a loss), ignoring None/NaN; None if none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return min(values) if monitor_mode(monitor) == "min" else max(values)
