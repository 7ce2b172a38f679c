"""Training a model: ``train`` compiles when needed and fits with the standard callbacks (best
checkpoint, optional early stopping, ``TerminateOnNaN``, resume from ``backup_dir``), on
images or on cached base features; class weights and the (train, validation) pair it takes."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from catdog._rules import (
    DEFAULT_SEED,
    check_int,
    is_int,
    is_positive_number,
    monitor_mode,
)
from catdog.data.pipelines import Splits, check_split_sizes, label_counts
from catdog.errors import InvalidArgumentError, TrainingDivergedError
from catdog.models.classifier import ImageClassifier, compile_model, is_multi_label
from catdog.models.prototypes import prototype_head
from catdog.training.callbacks import (
    AtomicBackupAndRestore,
    BestModelCheckpoint,
    best_of,
    read_history_csv,
    weights_are_finite,
)
from catdog.training.distribute import (
    lost_workers_as_errors,
    scratch_folder,
    shard_by_example,
    strategy_scope,
)
from catdog.training.feature_cache import Features, extract_split_features, split_transfer_model
from catdog.training.prototypes import set_prototypes

if TYPE_CHECKING:
    import tensorflow as tf


def train(
    model: keras.Model,
    splits: Splits | tuple[tf.data.Dataset, tf.data.Dataset],
    epochs: int = 20,
    *,
    learning_rate: float = 1e-3,
    checkpoint: str | os.PathLike | None = None,
    monitor: str = "val_accuracy",
    early_stopping: int | None = None,
    backup_dir: str | os.PathLike | None = None,
    initial_epoch: int = 0,
    best_so_far: float | None = None,
    strategy: tf.distribute.Strategy | None = None,
    cache_features: bool = False,
    augment_copies: int = 0,
    extraction_engine: str = "auto",
    features: Features | None = None,
    class_weight: str | dict | None = None,
    jit_compile: bool | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """Fit ``model`` on ``splits.train``, validating on ``splits.validation``.

    A model that is not compiled yet is compiled with
    [`catdog.compile_model`][catdog.models.classifier.compile_model] and ``learning_rate``; a
    compiled model
    keeps its optimizer (and its learning rate), with or without ``cache_features``. A model
    whose weights are not finite is never checkpointed; when training diverges (non-finite loss
    or weights) ``train`` raises [`TrainingDivergedError`][catdog.errors.TrainingDivergedError],
    whose ``history`` holds the epochs run.

    Args:
        model: the Keras model to train (in place).
        splits: the data: [`Splits`][catdog.data.pipelines.Splits] (its validation split must not be
            empty), or a pair of batched ``(images, labels)`` datasets ``(train, validation)``
            of your own (``tf.data``; then the model's class names are not checked).
        epochs: epochs to run, counted from ``initial_epoch``.
        learning_rate: Adam's learning rate, when ``train`` compiles the model.
        checkpoint: a ``.keras`` path that keeps the best model (by ``monitor``), written
            atomically.
        monitor: the metric that picks the best epoch (``"val_accuracy"``; a loss is minimised).
        early_stopping: stop after this many epochs without improvement and restore the best
            weights. Defaults to `None` (no early stopping).
        backup_dir: makes the run resumable: rerun the same call after a crash and it continues
            from the last finished epoch; the returned history then covers all epochs.
        initial_epoch: the number of the first epoch (a later training stage).
        best_so_far: the best ``monitor`` value of an earlier stage (``fine_tune`` passes it):
            the checkpoint is then only replaced by an epoch that beats it.
        strategy: a ``tf.distribute`` strategy whose ``scope()`` the model was built in
            (see [`make_strategy`][catdog.training.distribute.make_strategy]). The data is sharded
            by
            example across workers; on a multi-worker cluster only the chief writes
            ``checkpoint`` and ``backup_dir`` (the others write to temporary folders and
            resume from the chief's ``backup_dir``, which must be on storage they share), and
            a lost worker raises [`ClusterError`][catdog.errors.ClusterError].
        cache_features: for a transfer model with a frozen base: compute the base's features
            once per image and train only the head on them: same model, far less compute (see
            [`catdog.training.feature_cache`][catdog.training.feature_cache]).
        augment_copies: with ``cache_features``, augmented versions of each training image to
            cache as well.
        extraction_engine: with ``cache_features``, where the base computes the features:
            ``"tensorflow"``, ``"litert"`` (about twice as fast on a CPU, after a one-off
            conversion cached on disk) or ``"auto"``, LiteRT when it pays off (see
            [`prepare_extraction_engine`][catdog.training.feature_cache.prepare_extraction_engine]).
        features: with ``cache_features``, the base's
            [`Features`][catdog.training.feature_cache.Features] computed before
            ([`extract_split_features`][catdog.training.feature_cache.extract_split_features],
            with ``augment_copies``): no pass over the images here, and the caller keeps them
            for [`calibrate`][catdog.training.calibration.calibrate] and the embeddings.
        class_weight: ``"balanced"`` weighs each class's examples by ``n / (k * n_class)``
            (``n`` training images, ``k`` classes), so rare classes count as much as common
            ones in the loss; or a dict from class index or name to weight (missing classes
            weigh 1). Defaults to `None` (every example weighs 1).
        jit_compile: passed to ``compile``.
        callbacks: more Keras callbacks: ``keras.callbacks.TensorBoard``, or an MLflow or
            Weights & Biases callback (see the training guide).
        verbose: passed to ``fit``.

    Examples:
        ```python
        model = build_model("baseline", input_shape=(160, 160, 3))
        history = train(model, splits, epochs=5, checkpoint="best.keras")
        ```
    """
    check_int("epochs", epochs)
    weights_per_class = _checked_arguments(model, splits, class_weight, early_stopping, strategy)
    with strategy_scope(strategy):
        if not model.compiled:
            compile_model(model, learning_rate, jit_compile=jit_compile)
        if cache_features and not model.optimizer.built:
            # only the head is fitted: build the whole model's optimizer so that checkpoints
            # hold its (empty) state and load without Keras' "skipping variables" warning
            model.optimizer.build(model.trainable_variables)
    if prototype_head(model) is not None:  # a few-shot model: set from one pass, not trained
        return set_prototypes(model, features, checkpoint, splits, extraction_engine, strategy)
    fit_model, (train_data, validation_data) = model, train_and_validation(splits)
    _check_features(features, cache_features, augment_copies)
    if cache_features:
        features = features or extract_split_features(
            model, splits, augment_copies, engine=extraction_engine, strategy=strategy
        )
        fit_model, train_data, validation_data = _cached_feature_data(
            model, splits, features, jit_compile, strategy
        )
    if strategy is not None:  # each worker trains on its share of every batch
        train_data, validation_data = map(shard_by_example, (train_data, validation_data))
    with scratch_folder(strategy) as scratch, lost_workers_as_errors(strategy):
        if scratch is not None:  # not the chief: write to scratch, resume from the chief's
            checkpoint = checkpoint and scratch / Path(checkpoint).name
        resume, history_csv, resumed_at = _resumable(fit_model, backup_dir, scratch)
        standard = _standard_callbacks(
            model, checkpoint, monitor, early_stopping, best_so_far, history_csv
        )
        history = fit_model.fit(
            train_data,
            validation_data=validation_data,
            epochs=initial_epoch + epochs,
            initial_epoch=resumed_at or initial_epoch,
            callbacks=[keras.callbacks.TerminateOnNaN(), *resume, *standard, *callbacks],
            class_weight=weights_per_class,
            shuffle=False,  # splits.train is already reshuffled every epoch
            verbose=verbose,
        )
        _merge_resumed_epochs(history, history_csv, initial_epoch)
    _raise_if_diverged(model, history.history)
    return history


def _merge_resumed_epochs(history, history_csv: Path | None, initial_epoch: int) -> None:
    """Give ``history`` the epochs of the killed run too (a resumable run's CSV log)."""
    if history_csv is None:
        return
    merged = read_history_csv(history_csv)
    if merged:
        history.history = merged
        history.epoch = list(range(initial_epoch, initial_epoch + len(next(iter(merged.values())))))
    history_csv.unlink(missing_ok=True)


def attach_class_names(model: keras.Model, class_names: Sequence[str]) -> None:
    """Give a catdog model the data's class names, or refuse data the model does not fit.

    The model must have one output per class; a model that already carries class names must
    carry these, in this order. Other Keras models are only checked for their outputs.

    Examples:
        ```python
        attach_class_names(model, splits.class_names)
        model.class_names
        # ['cats', 'dogs']
        ```
    """
    outputs = model.output_shape[-1] if getattr(model, "built", True) else None
    if outputs is not None and outputs != len(class_names):
        raise InvalidArgumentError(
            f"The model has {outputs} outputs but the data has {len(class_names)} classes "
            f"({list(class_names)}). Build the model with class_names=splits.class_names."
        )
    if not isinstance(model, ImageClassifier):
        return
    if model.class_names is None:
        model.class_names = list(class_names)
    elif model.class_names != list(class_names):
        raise InvalidArgumentError(
            f"The model was built for the classes {model.class_names}, but the data's classes "
            f"are {list(class_names)}. Train it on data with those class folders, or build a "
            "new model with class_names=splits.class_names."
        )


def _checked_arguments(model, splits, class_weight, early_stopping, strategy) -> dict | None:
    """Check ``train``'s data, ``early_stopping`` and strategy; return ``fit``'s class weights."""
    if isinstance(splits, Splits):
        check_split_sizes(splits, ("train", "validation"))
        attach_class_names(model, splits.class_names)
        _check_label_kind(model, splits, class_weight)
    else:
        _check_dataset_pair(splits)
        _check_pair_labels(model, splits)
    weights_per_class = class_weights(splits, class_weight, model.output_shape[-1])
    if early_stopping is not None:
        check_int("early_stopping", early_stopping)
    if strategy is not None and model.distribute_strategy is not strategy:
        raise InvalidArgumentError(
            "The model was not built under this strategy. Build it inside "
            "`with strategy.scope():` and pass the same strategy to train()."
        )
    return weights_per_class


def _check_label_kind(model, splits: Splits, class_weight) -> None:
    """Refuse a single-label model on multi-label data (several classes per photo), and the
    other way round; and class weights on multi-label data (Keras would take the argmax)."""
    multi = bool(getattr(splits, "multi_label", False))
    if multi != is_multi_label(model):
        raise InvalidArgumentError(
            "The data gives each photo several classes (multi-label) but the model answers one: "
            "build it with multi_label=True."
            if multi
            else "The model is multi-label but the data gives each photo one class: build it "
            "without multi_label (drop it from model_kwargs), or read the data from a labels "
            "file (catdog.data.multilabel.from_label_table)."
        )
    if multi and class_weight is not None:
        raise InvalidArgumentError("class_weight is for single-label data; leave it out.")


def _check_pair_labels(model, pair) -> None:
    """Your own datasets: multi-hot ``(batch, classes)`` labels for a multi-label model, class
    indices for a single-label one (Keras would broadcast the other shapes silently)."""
    spec = pair[0].element_spec
    shape = getattr(spec[1], "shape", None) if isinstance(spec, tuple) and len(spec) > 1 else None
    if shape is None or shape.rank is None:  # not (images, labels), or not known yet
        return
    classes = model.output_shape[-1]
    if is_multi_label(model):
        fits = shape.rank == 2 and shape[-1] in (classes, None)
    else:
        fits = shape.rank == 1 or (shape.rank == 2 and shape[-1] == 1)
    if not fits:
        raise InvalidArgumentError(
            f"The training labels have shape {tuple(shape)}: a multi-label model needs "
            f"multi-hot labels of shape (batch, {classes}), a single-label one class indices "
            "of shape (batch,)."
        )


def _resumable(fit_model, backup_dir, scratch) -> tuple[list, Path | None, int]:
    """The resume callbacks for ``backup_dir``, its CSV history file, and the epoch to resume
    from (0: none), whose state is then loaded into ``fit_model``. A worker other than the
    chief (``scratch`` is its folder) resumes from the chief's state and writes to scratch."""
    if backup_dir is None:
        return [], None, 0
    restore_from = None
    if scratch is not None:
        restore_from, backup_dir = Path(backup_dir) / "state", scratch / "backup"
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    history_csv = backup_dir / "history.csv"
    backup = AtomicBackupAndRestore(
        backup_dir / "state", reset_also=[history_csv], restore_from=restore_from
    )
    resumed_at = backup.restore(fit_model)  # before reading the log: a torn state drops it
    csv_log = keras.callbacks.CSVLogger(str(history_csv), append=True)
    return [backup, csv_log], history_csv, resumed_at


def _standard_callbacks(model, checkpoint, monitor, early_stopping, best_so_far, history_csv):
    """The best checkpoint (which must beat the resumed epochs' best too) and early stopping."""
    previous = read_history_csv(history_csv) if history_csv is not None else {}
    result: list[keras.callbacks.Callback] = []
    if checkpoint is not None:
        best = best_of([best_so_far, *previous.get(monitor, [])], monitor)
        result.append(BestModelCheckpoint(checkpoint, monitor, best=best, model_to_save=model))
    if early_stopping:
        result.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=early_stopping,
                restore_best_weights=True,
                mode=monitor_mode(monitor),
            )
        )
    return result


def _learning_rate(model: keras.Model) -> float:
    """The current learning rate of a compiled model's optimizer."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _raise_if_diverged(model: keras.Model, history: dict) -> None:
    losses = history.get("loss", [])
    if all(math.isfinite(v) for v in losses) and weights_are_finite(model):
        return
    rate = _learning_rate(model)
    weights = "" if weights_are_finite(model) else " and the model's weights are no longer finite"
    raise TrainingDivergedError(
        f"Training diverged: the loss became {losses[-1] if losses else 'NaN'} after "
        f"{len(losses)} epoch(s){weights}, so no model was saved from that point on. Lower the "
        f"learning rate (it was {rate:g}; try {rate / 10:g} or less).",
        history=history,
    )


def _check_features(features: Features | None, cache_features: bool, copies: int) -> None:
    """Refuse features that training would not use, or that hold another number of copies."""
    if features is not None and not cache_features:
        raise InvalidArgumentError(
            "features= are for cached-feature training: pass cache_features=True."
        )
    if features is not None and features.copies != copies:
        raise InvalidArgumentError(
            f"The features hold {features.copies} augmented copies per training image and "
            f"augment_copies is {copies}: extract them with copies={copies}."
        )


def _cached_feature_data(model, splits, features: Features, jit_compile, strategy):
    """The head model and tf.data pipelines of cached features (see catdog.training.feature_cache).

    The head is compiled like ``model`` (already compiled): same learning rate.
    """
    import tensorflow as tf

    with strategy_scope(strategy):  # the head's optimizer belongs to the strategy too
        _, head = split_transfer_model(model)
        compile_model(head, _learning_rate(model), jit_compile=jit_compile)
    if isinstance(splits, Splits):
        batch_size = splits.batch_size
    else:  # your own datasets: their batch size
        batch_size = int(next(iter(train_and_validation(splits)[0]))[0].shape[0])
    x_train, y_train = features.head["train"], features.labels["train"]
    x_val, y_val = features.head["validation"], features.labels["validation"]
    train_data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        # seeded: every worker of a cluster shuffles alike, so the DATA shards do not overlap
        .shuffle(len(y_train), seed=DEFAULT_SEED, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch_size)
    return head, train_data, validation_data


def train_and_validation(splits) -> tuple:
    """``(train, validation)`` datasets of ``Splits`` or of a pair of datasets.

    Examples:
        ```python
        train_data, validation_data = train_and_validation(splits)
        ```
    """
    return (splits.train, splits.validation) if isinstance(splits, Splits) else tuple(splits)


def _check_dataset_pair(data) -> None:
    import tensorflow as tf

    if not (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(d, tf.data.Dataset) for d in data)
    ):
        raise InvalidArgumentError(
            "splits must be catdog Splits or a pair (train, validation) of batched tf.data "
            f"datasets of (images, labels), got {type(data).__name__}."
        )


def class_weights(data, class_weight: str | dict | None, num_classes: int) -> dict | None:
    """The ``{class index: weight}`` dict that ``fit`` takes, from ``train``'s argument.

    Examples:
        ```python
        class_weights(splits, "balanced", 2)  # 900 cats, 100 dogs
        # {0: 0.5556, 1: 5.0}
        ```
    """
    if class_weight is None:
        return None
    names = list(data.class_names) if isinstance(data, Splits) else []
    if class_weight == "balanced":
        counts = (
            list(label_counts(data).values())
            if isinstance(data, Splits)
            else [label_counts(data[0]).get(i, 0) for i in range(num_classes)]
        )
        total, present = sum(counts), sum(1 for c in counts if c)
        return {i: (total / (present * c) if c else 1.0) for i, c in enumerate(counts)}
    if not isinstance(class_weight, dict):
        raise InvalidArgumentError(
            f"class_weight must be 'balanced', a dict or None, got {class_weight!r}."
        )
    weights = dict.fromkeys(range(num_classes), 1.0)
    for key, value in class_weight.items():
        index = names.index(key) if key in names else key
        if not (is_int(index, minimum=0) and index < num_classes) or not is_positive_number(value):
            raise InvalidArgumentError(
                f"class_weight maps a class index (0..{num_classes - 1}) or name "
                f"({names or 'none known'}) to a positive weight; got {key!r}: {value!r}."
            )
        weights[index] = float(value)
    return weights
