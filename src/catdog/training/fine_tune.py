"""Fine-tuning: unfreeze the top of a transfer model's base and go on training at a low
learning rate, continuing the epoch count; merging the two stages' histories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from catdog._rules import (
    DEFAULT_UNFREEZE_FROM,
    check_int,
    history_dict,
)
from catdog.data.pipelines import Splits
from catdog.models.classifier import compile_model
from catdog.models.transfer import unfreeze_base
from catdog.training.callbacks import best_of
from catdog.training.distribute import (
    strategy_scope,
)
from catdog.training.fit import train

if TYPE_CHECKING:
    import tensorflow as tf


def fine_tune(
    model: keras.Model,
    splits: Splits,
    *,
    unfreeze_from: float | int | str = DEFAULT_UNFREEZE_FROM,
    learning_rate: float = 1e-5,
    epochs: int = 10,
    history: keras.callbacks.History | dict | None = None,
    initial_epoch: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    **train_kwargs: Any,
) -> keras.callbacks.History:
    """Second stage of transfer learning: unfreeze the top of the base and train on, slowly.

    Unfreezes the top of the base, recompiles with ``learning_rate`` and trains on, numbering
    the epochs after the first stage's.

    Args:
        model: a transfer model (with a ``base`` layer), trained in place.
        splits: the data, as for [`train`][catdog.training.fit.train].
        unfreeze_from: the first base layer to unfreeze, an index or a layer name (see
            [`unfreeze_base`][catdog.models.transfer.unfreeze_base]); BatchNorm stays in inference
            mode.
        learning_rate: Adam's learning rate for this stage, usually far below the first's.
        epochs: how many more epochs to train.
        history: the first stage's ``History`` (or its dict): the epochs are numbered after
            it, and a ``checkpoint`` is only replaced by an epoch that beats its best.
        initial_epoch: the first epoch's number, when there is no ``history``.
        strategy: a ``tf.distribute`` strategy, as for ``train``.
        **train_kwargs: any other argument of [`train`][catdog.training.fit.train]
            (``checkpoint``, ``early_stopping``, ``backup_dir``, ...).

    Examples:
        ```python
        first = train(model, splits, epochs=10)
        second = fine_tune(model, splits, epochs=10, history=first)
        ```
    """
    check_int("epochs", epochs)
    unfreeze_base(model, unfreeze_from)
    with strategy_scope(strategy):
        compile_model(model, learning_rate, jit_compile=train_kwargs.get("jit_compile", "auto"))
    previous = history_dict(history)
    if initial_epoch is None:
        initial_epoch = len(next(iter(previous.values()), []))
    monitor = train_kwargs.get("monitor", "val_accuracy")
    train_kwargs.setdefault("best_so_far", best_of(previous.get(monitor, []), monitor))
    return train(
        model, splits, epochs, initial_epoch=initial_epoch, strategy=strategy, **train_kwargs
    )


def merge_histories(*histories) -> dict[str, list[float]]:
    """Concatenate ``History`` objects (or their dicts) into one dict of per-epoch lists.

    Examples:
        ```python
        merge_histories(first, second)["val_accuracy"]
        ```
    """
    merged: dict[str, list[float]] = {}
    for item in histories:
        for key, values in history_dict(item).items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged
