"""Training, resuming and fine-tuning, with atomic checkpoints.

``train`` compiles when needed and fits with sensible callbacks: best checkpoint, optional
early stopping, ``TerminateOnNaN``, and resume from ``backup_dir`` (Keras'
``BackupAndRestore``). ``fine_tune`` unfreezes the top of a transfer model's base and goes on
training at a low learning rate, continuing the epoch count.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras

from catdog.data import Splits
from catdog.errors import InvalidArgumentError
from catdog.io import save_model
from catdog.models import compile_model, get_base


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the whole model atomically whenever ``monitor`` improves.

    Examples:
        >>> model.fit(ds, callbacks=[BestModelCheckpoint("best.keras")])  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike, monitor: str = "val_accuracy", best=None, model_to_save=None
    ):
        super().__init__()
        self.path, self.monitor, self.model_to_save = Path(path), monitor, model_to_save
        self.mode = "min" if "loss" in monitor else "max"
        self.best = best

    def _improved(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self._improved(float(value)):
            self.best = float(value)
            save_model(self.model_to_save or self.model, self.path)


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
                history.setdefault(key, []).append(float(value))
    return history


def _best_of(values, monitor: str):
    """The best of ``monitor`` values (lowest for a loss), ignoring None/NaN; None if none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return min(values) if "loss" in monitor else max(values)


def _check_epochs(epochs) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidArgumentError(f"epochs must be a positive integer, got {epochs!r}.")


def train(
    model: keras.Model,
    splits: Splits,
    epochs: int = 20,
    *,
    learning_rate: float = 1e-3,
    checkpoint: str | os.PathLike | None = None,
    monitor: str = "val_accuracy",
    early_stopping: int | None = None,
    backup_dir: str | os.PathLike | None = None,
    initial_epoch: int = 0,
    best_so_far: float | None = None,
    strategy=None,
    cache_features: bool = False,
    augment_copies: int = 0,
    jit_compile: bool | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """Fit ``model`` on ``splits.train``, validating on ``splits.validation``.

    Compiles with [`catdog.compile_model`][catdog.models.compile_model] when the model is not
    compiled yet. ``checkpoint`` keeps the best model (by ``monitor``) in a ``.keras`` file, written
    atomically. ``early_stopping=N`` stops after N epochs without improvement and restores the best
    weights. ``backup_dir`` makes the run resumable: run the same call again after a crash and it
    continues from the last finished epoch; the returned history then covers all epochs.
    ``best_so_far`` is the best ``monitor`` value of an earlier stage (``fine_tune`` passes it): the
    checkpoint is then only replaced by an epoch that beats it. ``strategy`` is a ``tf.distribute``
    strategy whose ``scope()`` the model was built in. ``cache_features=True`` (transfer models with
    a frozen base) computes the base's features once per image, plus ``augment_copies`` augmented
    versions of each training image, and trains only the head on them: same model, far less compute
    (see [`catdog.features`][catdog.features]). ``jit_compile`` is passed to ``compile``.

    Examples:
        >>> model = build_model("baseline", input_shape=(160, 160, 3))
        >>> history = train(model, splits, epochs=5, checkpoint="best.keras")  # doctest: +SKIP
    """
    _check_epochs(epochs)
    if early_stopping is not None and (
        isinstance(early_stopping, bool)
        or not isinstance(early_stopping, int)
        or early_stopping < 1
    ):
        raise InvalidArgumentError(
            f"early_stopping must be a positive number of epochs or None, got {early_stopping!r}."
        )
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    if strategy is not None and model.distribute_strategy is not strategy:
        raise InvalidArgumentError(
            "The model was not built under this strategy. Build it inside "
            "`with strategy.scope():` and pass the same strategy to train()."
        )
    with scope:
        if not model.compiled:
            compile_model(model, learning_rate, jit_compile=jit_compile)
    fit_model, train_data, validation_data = model, splits.train, splits.validation
    if cache_features:
        fit_model, train_data, validation_data = _cached_feature_data(
            model, splits, augment_copies, learning_rate, jit_compile, scope
        )
    history_csv = None
    previous: dict[str, list[float]] = {}
    all_callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if backup_dir is not None:
        backup_dir = Path(backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        history_csv = backup_dir / "history.csv"
        previous = _read_history_csv(history_csv)
        all_callbacks += [
            keras.callbacks.BackupAndRestore(str(backup_dir / "state"), delete_checkpoint=True),
            keras.callbacks.CSVLogger(str(history_csv), append=True),
        ]
    if checkpoint is not None:
        all_callbacks.append(
            BestModelCheckpoint(
                checkpoint,
                monitor,
                best=_best_of([best_so_far, *previous.get(monitor, [])], monitor),
                model_to_save=model,
            )
        )
    if early_stopping:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=early_stopping,
                restore_best_weights=True,
                mode="min" if "loss" in monitor else "max",
            )
        )
    history = fit_model.fit(
        train_data,
        validation_data=validation_data,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        callbacks=[*all_callbacks, *callbacks],
        shuffle=False,  # splits.train is already reshuffled every epoch
        verbose=verbose,
    )
    if history_csv is not None:
        merged = _read_history_csv(history_csv)
        if merged:
            history.history = merged
            history.epoch = list(
                range(initial_epoch, initial_epoch + len(next(iter(merged.values()))))
            )
        history_csv.unlink(missing_ok=True)
    return history


def _cached_feature_data(model, splits, copies, learning_rate, jit_compile, scope):
    """The head model and tf.data pipelines of cached features (see catdog.features)."""
    import tensorflow as tf

    from catdog.features import extract_features, split_transfer_model

    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise InvalidArgumentError(f"augment_copies must be an integer >= 0, got {copies!r}.")
    extractor, head = split_transfer_model(model)
    with scope:
        compile_model(head, learning_rate, jit_compile=jit_compile)
    x_train, y_train = extract_features(extractor, splits.train, copies)
    x_val, y_val = extract_features(extractor, splits.validation)
    train_data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), reshuffle_each_iteration=True)
        .batch(splits.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(splits.batch_size)
    return head, train_data, validation_data


def unfreeze_base(model: keras.Model, unfreeze_from: int | str = 100) -> int:
    """Make the base's layers from ``unfreeze_from`` (index or layer name) on trainable.

    BatchNormalization layers keep running in inference mode (the base is wrapped in
    [`catdog.InferenceMode`][catdog.layers.InferenceMode]). Returns the number of trainable base
    layers.

    Examples:
        >>> unfreeze_base(model, unfreeze_from=100)  # doctest: +SKIP
        54
    """
    base = get_base(model)
    names = [layer.name for layer in base.layers]
    if isinstance(unfreeze_from, str):
        if unfreeze_from not in names:
            raise InvalidArgumentError(
                f"The base has no layer named {unfreeze_from!r}; pass a layer index "
                f"(0-{len(names) - 1}) or one of its layer names, e.g. {names[-10]!r}."
            )
        start = names.index(unfreeze_from)
    elif (
        isinstance(unfreeze_from, bool)
        or not isinstance(unfreeze_from, int)
        or not (0 <= unfreeze_from < len(names))
    ):
        raise InvalidArgumentError(
            f"unfreeze_from must be a layer index in 0..{len(names) - 1} or a layer name, got "
            f"{unfreeze_from!r}."
        )
    else:
        start = unfreeze_from
    base.trainable = True
    for layer in base.layers[:start]:
        layer.trainable = False
    return len(names) - start


def fine_tune(
    model: keras.Model,
    splits: Splits,
    *,
    unfreeze_from: int | str = 100,
    learning_rate: float = 1e-5,
    epochs: int = 10,
    history: keras.callbacks.History | dict | None = None,
    initial_epoch: int | None = None,
    strategy=None,
    **train_kwargs,
) -> keras.callbacks.History:
    """Second stage of transfer learning: unfreeze the top of the base and train on, slowly.

    Unfreezes the base from ``unfreeze_from`` (see
    [`unfreeze_base`][catdog.training.unfreeze_base]), recompiles with ``learning_rate`` and trains
    for ``epochs`` more epochs, numbered after those of ``history`` (the first stage's ``History``
    or its dict) or from ``initial_epoch``. With ``history``, a ``checkpoint`` is only replaced by
    an epoch that beats the first stage's best. Other keyword arguments go to
    [`train`][catdog.training.train].

    Examples:
        >>> first = train(model, splits, epochs=10)  # doctest: +SKIP
        >>> second = fine_tune(model, splits, epochs=10, history=first)  # doctest: +SKIP
    """
    _check_epochs(epochs)
    unfreeze_base(model, unfreeze_from)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        compile_model(model, learning_rate, jit_compile=train_kwargs.get("jit_compile", "auto"))
    previous = history.history if hasattr(history, "history") else dict(history or {})
    if initial_epoch is None:
        initial_epoch = len(next(iter(previous.values()), []))
    monitor = train_kwargs.get("monitor", "val_accuracy")
    train_kwargs.setdefault("best_so_far", _best_of(previous.get(monitor, []), monitor))
    return train(
        model, splits, epochs, initial_epoch=initial_epoch, strategy=strategy, **train_kwargs
    )


def merge_histories(*histories) -> dict[str, list[float]]:
    """Concatenate ``History`` objects (or their dicts) into one dict of per-epoch lists.

    Examples:
        >>> merge_histories(first, second)["val_accuracy"]  # doctest: +SKIP
    """
    merged: dict[str, list[float]] = {}
    for item in histories:
        data = item.history if hasattr(item, "history") else item
        for key, values in data.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged
