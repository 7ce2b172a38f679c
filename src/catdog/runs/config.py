"""What ``catdog train`` does: [`RunConfig`][catdog.runs.config.RunConfig], its per-model
defaults, the checks made before any work, and what the run records of it."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path

from catdog import _argtypes as parse
from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_COVERAGE,
    DEFAULT_IMAGE_SIDE,
    DEFAULT_SEED,
    DEFAULT_UNFREEZE_FROM,
    PRECISIONS,
    STRATEGIES,
    check_choice,
    check_coverage,
    check_int,
    check_output_folder,
    check_positive_number,
    check_strategy,
)
from catdog.data.exclusions import describe_exclusion
from catdog.data.relabel import describe_relabel
from catdog.errors import InvalidArgumentError
from catdog.io import json_safe

DEMO_DEFAULTS = {"model": "preprocessed", "image_size": 64, "epochs": 8, "images_per_class": 200}

FROZEN_BASE_DEFAULTS = {
    "cache_features": True, "augment_copies": 0, "fine_tune_epochs": 0, "early_stopping": 3
}  # fmt: skip
"""What ``catdog train`` does by default for a transfer model with a frozen base: train the
head on cached features of each image, stopping after 3 epochs without improvement. Chosen
on real photos (benchmarks/bench_real.py; the table in the training guide): augmented copies
and fine-tuning cost time and bought no measurable accuracy there (``--augment-copies``,
``--fine-tune-epochs`` turn them on)."""
OTHER_DEFAULTS = {
    "cache_features": False, "augment_copies": 0, "fine_tune_epochs": 0, "early_stopping": 0
}  # fmt: skip
"""The same settings for every other model: end-to-end training, no early stopping."""


def setting(
    default: object = MISSING,
    flags: str | tuple[str, ...] = (),
    help: str = "",
    *,
    type: Callable | None = None,
    choices: tuple | None = None,
    metavar: str | None = None,
    action: Callable | None = None,
    compared: bool = True,
    card: bool = False,
    factory: Callable | None = None,
) -> Field:
    """A [`RunConfig`][catdog.runs.config.RunConfig] field and what is made of it.

    Its metadata makes the ``catdog train`` option (``flags``, ``help``, and the ``argparse``
    ``type``, ``choices``, ``metavar``, ``action``), the row of the model card's settings
    table (``card``) and the resume check (``compared``: a changed value is another run).

    Args:
        default: the value when none is given (``MISSING``: required).
        flags: the option's names (none: no option).
        help: its help; ``{default}`` is the field's default, ``{demo}`` the demo's
            (``DEMO_DEFAULTS``), ``{frozen}`` a frozen base's
            ([`FROZEN_BASE_DEFAULTS`][catdog.runs.config.FROZEN_BASE_DEFAULTS]).
        type: ``argparse``'s ``type``: text -> value (see ``catdog._argtypes``).
        choices: ``argparse``'s ``choices``.
        metavar: ``argparse``'s ``metavar``.
        action: ``argparse``'s ``action``.
        compared: whether a run with another value is another run (refused on resume).
        card: whether the model card's settings table shows it.
        factory: makes the default (``dataclasses.field``'s ``default_factory``).

    Examples:
        >>> [f.metadata["flags"] for f in fields(RunConfig) if f.name == "seed"]
        [('--seed',)]
    """
    given = {"type": type, "choices": choices, "metavar": metavar, "action": action}
    metadata = {
        "flags": (flags,) if isinstance(flags, str) else tuple(flags),
        "help": help,
        "argparse": {k: v for k, v in given.items() if v is not None},
        "compared": compared,
        "card": card,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """What ``catdog train`` does; the CLI fills it from its arguments.

    One row per setting: its default, its ``catdog train`` option and help, whether a run
    with another value is another run (``compared``) and whether the model card shows it
    (see [`setting`][catdog.runs.config.setting]). ``None`` for ``cache_features``,
    ``augment_copies``, ``fine_tune_epochs`` or ``early_stopping`` means the model's default
    ([`FROZEN_BASE_DEFAULTS`][catdog.runs.config.FROZEN_BASE_DEFAULTS] for a model with a frozen
    pretrained base, else [`OTHER_DEFAULTS`][catdog.runs.config.OTHER_DEFAULTS]);
    ``image_size=None`` the model's input size
    ([`ModelSpec.input_size`][catdog.models.registry.ModelSpec]). ``learning_rate="auto"``
    runs the [learning-rate finder][catdog.training.lr_finder.lr_find] on the built model first and
    trains with its suggestion (recorded in ``config.json`` as ``learning_rate_found``); when
    it has none (no clear descent) the run warns and trains at the default rate, recording
    ``learning_rate_found: null`` and the reason as ``learning_rate_note``. ``strategy``: see
    [`make_strategy`][catdog.training.distribute.make_strategy].
    """

    # name: type = setting(default, flags, help, ...): one row per setting
    out: Path = setting(
        MISSING, "--out", "run folder (default runs/MODEL, runs/demo with --demo)", compared=False
    )
    model: str = setting(
        "transfer",
        "--model",
        "registered model name (see `catdog models`); default {default}, or {demo} with --demo",
    )
    data: str = setting(
        "cats_and_dogs", "--data", "image folder, or {default} (default) to download the dataset"
    )
    exclude: str | None = setting(
        None,
        "--exclude",
        "leave these images out of every split (the folder is not touched): an audit.json "
        "written by catdog audit, or a text file with one path a line (absolute, or relative "
        "to --data); the run records the paths, and a changed list is another run",
        metavar="FILE",
        compared=False,  # where the list is does not matter: its paths are compared
    )
    relabel: str | None = setting(
        None, "--relabel", "file these images under another class, in their split (the folder "
        "is not touched): a catdog review page's decisions.json; recorded like --exclude",
        metavar="FILE", compared=False,  # compared by its map's SHA-256
    )  # fmt: skip
    epochs: int = setting(
        20,
        "--epochs",
        "default {default} ({demo} with --demo)",
        type=parse.positive_int,
        card=True,
    )
    fine_tune_epochs: int | None = setting(
        None,
        "--fine-tune-epochs",
        "epochs of fine-tuning the top of the base (transfer only; default {frozen} for a "
        "frozen base; 0 skips it)",
        type=parse.non_negative_int,
        card=True,
    )
    unfreeze_from: float | int | str = setting(
        DEFAULT_UNFREEZE_FROM,
        "--unfreeze-from",
        "where fine-tuning starts unfreezing the base: a fraction of its depth (default "
        "{default}: the top 35%%), a layer index or a layer name",
        type=parse.layer_position,
        card=True,
    )
    image_size: int | None = setting(
        None,
        "--image-size",
        "square side (default: the model's input size, 160 for the tutorial's models, the "
        "ImageNet size for a backbone; {demo} with --demo)",
        type=parse.positive_int,
    )
    batch_size: int = setting(
        DEFAULT_BATCH_SIZE,
        "--batch-size",
        "default {default}",
        type=parse.positive_int,
        card=True,
    )
    learning_rate: float | str = setting(
        1e-3,
        "--learning-rate",
        "default {default:g}; auto runs the learning-rate finder first",
        type=parse.learning_rate,
        card=True,
    )
    fine_tune_learning_rate: float = setting(
        1e-5, "--fine-tune-learning-rate", "default {default:g}", type=float, card=True
    )
    weights: str | None = setting(
        "imagenet",
        "--weights",
        "transfer base weights: {default} (default), none, or a weights file",
        type=parse.weights,
    )
    early_stopping: int | None = setting(
        None,
        "--early-stopping",
        "stop a stage after this many epochs without improvement (default {frozen} for a "
        "frozen-base transfer model, else off; 0 is off)",
        type=parse.non_negative_int,
        card=True,
    )
    cache_features: bool | None = setting(
        None,
        ("--cache-features", "--fast"),
        "transfer: compute the frozen base's features once and train the head on them (the "
        "default for a frozen base; --no-cache-features trains end to end). --fast is the old "
        "name",
        action=argparse.BooleanOptionalAction,
        card=True,
    )
    augment_copies: int | None = setting(
        None,
        "--augment-copies",
        "with cached features: augmented copies of each training image to cache (default {frozen})",
        type=parse.non_negative_int,
        card=True,
    )
    class_weight: str | None = setting(
        None,
        "--class-weight",
        "balanced: weigh each class's images so that rare classes count as much",
        choices=("balanced",),
        card=True,
    )
    tensorboard: str | None = setting(
        None, "--tensorboard", "write TensorBoard logs to DIR", metavar="DIR", compared=False
    )
    precision: str | None = setting(
        None,
        "--precision",
        "layer precision (mixed helps on GPUs; measure on CPUs)",
        choices=PRECISIONS,
        card=True,
    )
    strategy: str | None = setting(
        None,
        "--strategy",
        "where to train: none (this process), mirrored (every GPU of this machine) or "
        "multi_worker (the cluster in TF_CONFIG; run the same command on every worker with the "
        "same --out on shared storage). Default: mirrored when several GPUs are visible, else "
        "none",
        choices=STRATEGIES,
        compared=False,
    )
    cluster_timeout: float = setting(
        DEFAULT_CLUSTER_TIMEOUT,
        "--cluster-timeout",
        "how long to wait for the other workers of TF_CONFIG to start before stopping with an "
        "error (default {default:g})",
        type=parse.seconds,
        metavar="SECONDS",
        compared=False,
    )
    jit_compile: bool | str = setting(
        "auto",
        "--jit-compile",
        "XLA compilation of the training step",
        type=parse.jit_compile,
        metavar=parse.JIT_METAVAR,
    )
    calibrate: bool = setting(
        True,
        "--calibrate",
        "after training, fit temperature scaling on the validation split so that the "
        "probabilities are honest (the default; --no-calibrate keeps the raw ones)",
        action=argparse.BooleanOptionalAction,
        card=True,
    )
    unknown_coverage: float | None = setting(
        DEFAULT_COVERAGE,
        "--unknown-coverage",
        "answer unknown for images unlike the training images, the threshold accepting this "
        "share of the validation images (default {default}); off: never answer unknown",
        type=parse.coverage,
        metavar="SHARE",
        card=True,
    )
    seed: int = setting(
        DEFAULT_SEED,
        "--seed",
        "split and initialisation seed (default {default})",
        type=int,
        card=True,
    )
    verbose: str | int = setting("auto", compared=False)  # Keras' fit verbosity; no option
    model_kwargs: dict = setting(factory=dict)  # for the model's factory; no option


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
        training: head on cached features
        fine-tuning: none
        early stopping: after 3 epochs without improvement
    """
    copies = f" + {config.augment_copies} augmented copies per image"
    training = (
        f"head on cached features{copies if config.augment_copies else ''}"
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
RESULTS = (
    "class_names", "splits", "versions", "parameters", "learning_rate_found",
    "learning_rate_note", "calibration",
)  # fmt: skip
"""What a run adds to its configuration in ``config.json``: results, not settings (the
splits are compared by their files, with
[`splits_match`][catdog.runs.record.splits_match])."""


def config_record(config: RunConfig) -> dict:
    """``config`` as the JSON-ready dict that ``config.json`` holds (data folders absolute),
    with the paths that ``exclude`` lists and their SHA-256 (see
    [`describe_exclusion`][catdog.data.exclusions.describe_exclusion])."""
    record = {**asdict(config), "out": str(config.out), **describe_exclusion(config.exclude)}
    record.update(describe_relabel(config.relabel))
    if record["data"] != "cats_and_dogs":
        record["data"] = os.path.abspath(record["data"])
    return json.loads(json.dumps(json_safe(record)))


ADDED_SETTINGS = {"calibrate": True, "unknown_coverage": DEFAULT_COVERAGE}
"""Settings added after runs were first recorded: the record of an unfinished run without one
had its default (its run is calibrated when it is published)."""
ADDED_SETTINGS_BEFORE = {"calibrate": False, "unknown_coverage": None}
"""The same settings as a run finished by an older catdog has them: off (it was published
uncalibrated, so rerunning it today trains a calibrated run instead of reusing it)."""


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
    not_compared = {f.name for f in fields(RunConfig) if not f.metadata["compared"]}
    not_compared |= {"excluded", "relabelled"}  # compared by their SHA-256
    keys = sorted((set(old) | set(new)) - not_compared - set(RESULTS))

    def value(record: dict, key: str):
        found = record.get(key)
        if key == "unfreeze_from" and not record.get("fine_tune_epochs"):
            return None  # no fine-tuning: where it would start does not matter
        if key in ADDED_SETTINGS and key not in record:  # a record of an older catdog
            return ADDED_SETTINGS[key]
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

    pretrained = model_spec(config.model).pretrained
    if (config.fine_tune_epochs or config.cache_features) and not pretrained:
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
    check_choice("class_weight", config.class_weight, (None, "balanced"))
    check_positive_number("fine_tune_learning_rate", config.fine_tune_learning_rate)
    check_strategy(config.strategy)
    check_output_folder("--out", config.out, data=config.data)
    check_output_folder("--tensorboard", config.tensorboard, data=config.data)
    check_positive_number("cluster_timeout", config.cluster_timeout)
    check_coverage("unknown_coverage", config.unknown_coverage)
