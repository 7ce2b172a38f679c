"""What ``catdog train`` does: [`RunConfig`][catdog.runs.config.RunConfig], its per-model
defaults, the checks made before any work, and what the run records of it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_IMAGE_SIDE,
    DEFAULT_SEED,
    DEFAULT_UNFREEZE_FROM,
    check_int,
    check_output_folder,
    check_positive_number,
    check_strategy,
)
from catdog.errors import InvalidArgumentError
from catdog.io import json_safe

DEMO_DEFAULTS = {"model": "preprocessed", "image_size": 64, "epochs": 8, "images_per_class": 200}


FROZEN_BASE_DEFAULTS = {
    "cache_features": True,
    "augment_copies": 2,
    "fine_tune_epochs": 5,
    "early_stopping": 3,
}
"""What ``catdog train`` does by default for a transfer model with a frozen base: train the
head on cached features of each image and 2 augmented copies of it (their time and
accuracy against the tutorial's recipe: benchmarks/README.md), stop each stage after 3 epochs
without improvement, then fine-tune the top of the base for up to 5 epochs."""
OTHER_DEFAULTS = {
    "cache_features": False,
    "augment_copies": 0,
    "fine_tune_epochs": 0,
    "early_stopping": 0,
}
"""The same settings for every other model: end-to-end training, no early stopping."""


@dataclass
class RunConfig:
    """What ``catdog train`` does; the CLI fills it from its arguments.

    ``None`` for ``cache_features``, ``augment_copies``, ``fine_tune_epochs`` or
    ``early_stopping`` means the model's default
    ([`FROZEN_BASE_DEFAULTS`][catdog.runs.config.FROZEN_BASE_DEFAULTS] for a model with a frozen
    pretrained base, else [`OTHER_DEFAULTS`][catdog.runs.config.OTHER_DEFAULTS]);
    ``early_stopping=0`` is off. ``image_size=None`` means the model's default input size
    ([`ModelSpec.input_size`][catdog.models.registry.ModelSpec]: 160 for the tutorial's models, the
    ImageNet size for a backbone). ``unfreeze_from`` is a fraction of the base's depth, a
    layer index or a layer name (see
    [`check_unfreeze_from`][catdog.models.transfer.check_unfreeze_from]). ``learning_rate="auto"``
    runs the [learning-rate finder][catdog.training.lr_finder.lr_find] on the built model first and
    trains with its suggestion (recorded in ``config.json`` as ``learning_rate_found``); when
    it has none (no clear descent) the run warns and trains at the default rate, recording
    ``learning_rate_found: null`` and the reason as ``learning_rate_note``.
    ``class_weight="balanced"`` weighs rare classes up; ``tensorboard`` is a folder for
    TensorBoard logs. ``strategy`` is ``"none"``, ``"mirrored"`` or ``"multi_worker"`` (see
    [`make_strategy`][catdog.training.distribute.make_strategy]; ``None``: mirrored when several
    GPUs
    are visible); ``cluster_timeout`` is how many seconds a multi-worker task waits for the
    others to start.
    """

    out: Path
    model: str = "transfer"
    data: str = "cats_and_dogs"
    epochs: int = 20
    fine_tune_epochs: int | None = None
    unfreeze_from: float | int | str = DEFAULT_UNFREEZE_FROM
    image_size: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float | str = 1e-3
    fine_tune_learning_rate: float = 1e-5
    weights: str | None = "imagenet"
    early_stopping: int | None = None
    cache_features: bool | None = None
    augment_copies: int | None = None
    class_weight: str | None = None
    tensorboard: str | None = None
    precision: str | None = None
    strategy: str | None = None
    cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT
    jit_compile: bool | str = "auto"
    seed: int = DEFAULT_SEED
    verbose: str | int = "auto"
    model_kwargs: dict = field(default_factory=dict)


STAGE_BOUNDARY = "fine-tuning: training metrics from here use fresh augmentation"
"""The history plot's label for the stage boundary after training on cached features.

Before it, training accuracy and loss are measured on cached features (each image and its
augmented copies, drawn once); after it, on images augmented anew every epoch with part of the
base unfrozen. Training metrics can step at the line; validation metrics are measured the same
way throughout."""


def describe_settings(config: RunConfig) -> str:
    """One line saying how a (resolved) configuration trains: what ``catdog train`` logs.

    Examples:
        >>> line = describe_settings(resolve_defaults(RunConfig(out=Path("runs/x"))))
        >>> for part in line.split("; "):
        ...     print(part)
        training: head on cached features + 2 augmented copies per image
        fine-tuning: up to 5 epochs
        early stopping: after 3 epochs without improvement
    """
    training = (
        f"head on cached features + {config.augment_copies} augmented copies per image"
        if config.cache_features
        else "end to end"
    )
    fine_tuning = (
        f"up to {config.fine_tune_epochs} epoch{'s' * (config.fine_tune_epochs != 1)}"
        if config.fine_tune_epochs
        else "none"
    )
    stopping = (
        f"after {config.early_stopping} epoch{'s' * (config.early_stopping != 1)} without "
        "improvement"
        if config.early_stopping
        else "off"
    )
    return f"training: {training}; fine-tuning: {fine_tuning}; early stopping: {stopping}"


def resolve_defaults(config: RunConfig) -> RunConfig:
    """``config`` with every ``None`` setting replaced by the model's default.

    Examples:
        >>> resolve_defaults(RunConfig(out=Path("runs/x"))).cache_features
        True
        >>> resolve_defaults(RunConfig(out=Path("runs/x"), model="baseline")).cache_features
        False
    """
    from catdog.models.registry import model_spec

    spec = model_spec(config.model)
    frozen_base = spec.pretrained and not config.model_kwargs.get("base_trainable")
    defaults = FROZEN_BASE_DEFAULTS if frozen_base else OTHER_DEFAULTS
    if config.cache_features is False:
        defaults = {**defaults, "augment_copies": 0}  # no cached copies to make
    defaults = {**defaults, "image_size": spec.input_size or DEFAULT_IMAGE_SIDE}
    return replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})


# ----------------------------------------------------------------------------- run records
# may differ between the runs of one configuration, or are results rather than settings
_NOT_COMPARED = (
    "out", "verbose", "class_names", "splits", "versions", "parameters", "learning_rate_found",
    "learning_rate_note", "tensorboard", "strategy", "cluster_timeout",
)  # fmt: skip


def config_record(config: RunConfig) -> dict:
    """``config`` as the JSON-ready dict that ``config.json`` holds (data folders absolute)."""
    record = {**asdict(config), "out": str(config.out)}
    if record["data"] != "cats_and_dogs":
        record["data"] = os.path.abspath(record["data"])
    return json.loads(json.dumps(json_safe(record)))


def changed_fields(old: dict, new: dict) -> list[str]:
    """The configuration fields that differ between two records, as ``name: old -> new``.

    ``unfreeze_from`` only counts where the run fine-tunes.

    Examples:
        >>> changed_fields({"epochs": 5}, {"epochs": 10})
        ['epochs: 5 -> 10']
        >>> changed_fields({"unfreeze_from": 100, "fine_tune_epochs": 0},
        ...                {"unfreeze_from": 0.65, "fine_tune_epochs": 0})
        []
    """
    keys = sorted((set(old) | set(new)) - set(_NOT_COMPARED))

    def value(record: dict, key: str):
        found = record.get(key)
        if key == "unfreeze_from" and not record.get("fine_tune_epochs"):
            return None  # no fine-tuning: where it would start does not matter
        return 0 if key == "early_stopping" and found is None else found  # None and 0: off

    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if value(old, k) != value(new, k)
    ]


def check_config(config: RunConfig) -> None:
    """Check every setting that can be checked without data, before anything is written.

    Examples:
        >>> check_config(RunConfig(out=Path("runs/x"), epochs=0))
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: epochs must be a positive integer, got 0.
    """
    from catdog.models.registry import model_spec

    if (config.fine_tune_epochs or config.cache_features) and not model_spec(
        config.model
    ).pretrained:
        raise InvalidArgumentError(
            f"--fine-tune-epochs and --cache-features need a model with a pretrained base, and "
            f"{config.model!r} has none: use --model transfer or a backbone such as "
            "efficientnet_v2_b0 (`catdog models` lists them)."
        )
    check_int("epochs", config.epochs)
    check_int("fine_tune_epochs", config.fine_tune_epochs, minimum=0)
    check_int("image_size", config.image_size)
    check_int("batch_size", config.batch_size)
    check_int("augment_copies", config.augment_copies, minimum=0)
    if config.augment_copies and not config.cache_features:
        raise InvalidArgumentError(
            "--augment-copies needs cached features (--cache-features); end-to-end training "
            "augments every epoch anyway."
        )
    check_int("early_stopping", config.early_stopping or 0, minimum=0)
    if config.learning_rate != "auto":
        check_positive_number("learning_rate", config.learning_rate)
    if config.class_weight not in (None, "balanced"):
        raise InvalidArgumentError(
            f"class_weight must be 'balanced' or None, got {config.class_weight!r}."
        )
    check_positive_number("fine_tune_learning_rate", config.fine_tune_learning_rate)
    check_strategy(config.strategy)
    check_output_folder("--tensorboard", config.tensorboard)
    check_positive_number("cluster_timeout", config.cluster_timeout)
