"""The end-to-end job behind ``catdog train``: data, model, training, fine-tuning, report.

Everything lands in one run folder. While a run trains, its state lives in the folder's
``.resume/`` sub-folder (a lock, the configuration, checkpoints, backups); the run's files
(model, class names, configuration, history, reports, figures) are written only once training
has finished, so a run that fails or is interrupted never changes what the folder held
before. Rerunning the same call resumes an interrupted run, finishes one killed after
training, and does nothing for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
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
    is_int,
)
from catdog.download import default_cache_dir
from catdog.errors import InvalidArgumentError, TrainingDivergedError
from catdog.io import file_lock, json_safe, read_json, write_json

logger = logging.getLogger("catdog")

DEMO_DEFAULTS = {"model": "preprocessed", "image_size": 64, "epochs": 8, "images_per_class": 200}


FROZEN_BASE_DEFAULTS = {
    "cache_features": True,
    "augment_copies": 2,
    "fine_tune_epochs": 5,
    "early_stopping": 3,
}
"""What ``catdog train`` does by default for a transfer model with a frozen base: train the
head on cached features of each image and 2 augmented copies of it (measured: the copies
added 0.5 to 9 points of held-out accuracy for about twice the cached time, 3.6-7x faster
than the tutorial's recipe; see benchmarks/README.md), stop each stage after 3 epochs without
improvement, then fine-tune the top of the base for up to 5 epochs."""
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
    ([`FROZEN_BASE_DEFAULTS`][catdog.workflow.FROZEN_BASE_DEFAULTS] for a model with a frozen
    pretrained base, else [`OTHER_DEFAULTS`][catdog.workflow.OTHER_DEFAULTS]);
    ``early_stopping=0`` is off. ``image_size=None`` means the model's default input size
    ([`ModelSpec.input_size`][catdog.models.ModelSpec]: 160 for the tutorial's models, the
    ImageNet size for a backbone). ``unfreeze_from`` is a fraction of the base's depth, a
    layer index or a layer name (see
    [`check_unfreeze_from`][catdog.training.check_unfreeze_from]). ``learning_rate="auto"``
    runs the [learning-rate finder][catdog.lr_finder.lr_find] on the built model first and
    trains with its suggestion (recorded in ``config.json`` as ``learning_rate_found``); when
    it has none (no clear descent) the run warns and trains at the default rate, recording
    ``learning_rate_found: null`` and the reason as ``learning_rate_note``.
    ``class_weight="balanced"`` weighs rare classes up; ``tensorboard`` is a folder for
    TensorBoard logs. ``strategy`` is ``"none"``, ``"mirrored"`` or ``"multi_worker"`` (see
    [`make_strategy`][catdog.distribute.make_strategy]; ``None``: mirrored when several GPUs
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
    from catdog.models import model_spec

    spec = model_spec(config.model)
    frozen_base = spec.pretrained and not config.model_kwargs.get("base_trainable")
    defaults = FROZEN_BASE_DEFAULTS if frozen_base else OTHER_DEFAULTS
    if config.cache_features is False:
        defaults = {**defaults, "augment_copies": 0}  # no cached copies to make
    defaults = {**defaults, "image_size": spec.input_size or DEFAULT_IMAGE_SIDE}
    return replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})


def demo_data(images_per_class: int = 200, image_size: int = 64) -> Path:
    """Generate (once) the synthetic demo dataset in the Keras cache and return its folder.

    Concurrent callers wait for each other: the dataset is generated once.
    """
    from catdog.synthetic import make_synthetic_dataset

    folder = default_cache_dir() / "datasets" / f"catdog-demo-{images_per_class}-{image_size}"
    if folder.is_dir():
        return folder
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if not folder.is_dir():  # not made by a process we waited for
            tmp = Path(tempfile.mkdtemp(prefix=".catdog-demo-", dir=folder.parent))
            try:
                make_synthetic_dataset(tmp, images_per_class, (image_size, image_size), seed=0)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_data(config: RunConfig):
    """Splits for ``config.data``: ``cats_and_dogs`` (downloaded) or a folder."""
    from catdog.data import from_directory, load_cats_and_dogs

    size = (config.image_size, config.image_size)
    if config.data == "cats_and_dogs":
        return load_cats_and_dogs(image_size=size, batch_size=config.batch_size, seed=config.seed)
    return from_directory(
        config.data, image_size=size, batch_size=config.batch_size, seed=config.seed
    )


def _build(config: RunConfig, class_names: list[str]):
    """The configured model, with one output per class (and the names, if its factory takes
    them; otherwise ``train`` gives a catdog model its names)."""
    from catdog.models import build_model, factory_parameters, model_spec

    kwargs = {"num_classes": len(class_names), **config.model_kwargs}
    if "class_names" in factory_parameters(config.model):
        kwargs = {"class_names": class_names, **config.model_kwargs}
    if model_spec(config.model).pretrained:
        kwargs.setdefault("weights", config.weights)
    return build_model(
        config.model,
        input_shape=(config.image_size, config.image_size, 3),
        precision=config.precision,
        **kwargs,
    )


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


# ----------------------------------------------------------------------------- the job
def run_training(config: RunConfig, strategy=None) -> dict:
    """Train (and fine-tune) as configured; write the run folder; return a summary dict.

    The run folder gets ``model.keras`` (best by validation accuracy), ``class_names.json``,
    ``config.json`` (this configuration, the class names and a fingerprint of each split),
    ``history.json``/``history.png``, ``report.txt``/``report.json`` (test split),
    ``confusion_matrix.png``, ``misclassified.png`` and ``samples.png``, all written once
    training has finished. Arguments and data are checked before anything is trained or
    written. While training, ``.resume/`` holds the run's state: rerunning the same call after a
    crash continues where it stopped, and after training finishes it only finishes the
    missing files. A finished run is not trained again: the call returns its report. A run
    with another configuration into a folder holding an unfinished run is refused, naming the
    changed fields; one into a folder holding a finished run replaces it when it finishes. A
    second process training into the same folder at the same time is refused.

    On a multi-worker cluster (``config.strategy="multi_worker"``) every worker runs this
    with the same configuration and the same ``out`` on storage they share: the chief trains
    and writes the run folder as above, the other workers train with it, read its resume state
    and write nothing there. The summary's ``weights_sha256`` is a digest of the final weights
    (equal on every worker).

    Examples:
        ```python
        run_training(RunConfig(out=Path("runs/demo"), model="baseline"))
        ```
    """
    from catdog.distribute import agree, failures_shared, is_chief, make_strategy, task_of

    config = resolve_defaults(config)
    check_config(config)
    if strategy is None:
        strategy = make_strategy(config.strategy, config.cluster_timeout)
    if config.learning_rate == "auto" and task_of(strategy)[0] is not None:
        raise InvalidArgumentError(
            "--learning-rate auto runs on one machine: find the rate with a single-worker run "
            "(its config.json records learning_rate_found) and pass it to the cluster."
        )
    out = Path(config.out)
    staging, created = out / ".resume", not out.exists()
    with contextlib.ExitStack() as held:
        with failures_shared(strategy):  # every check, on every worker, before any training
            if out.exists() and not out.is_dir():
                raise InvalidArgumentError(
                    f"The run folder {str(out)!r} is a file; choose a folder."
                )
            if is_chief(strategy):  # the chief holds the lock and owns the folder
                held.enter_context(
                    file_lock(
                        staging / "lock",
                        wait=False,
                        busy=f"Another catdog train is writing into {str(out)!r} right now. "
                        "Wait for it to finish, or choose another --out.",
                    )
                )
                held.callback(_drop_empty_state, out, staging, created)  # runs before unlocking
            finished, plan = _plan(config, out, staging, strategy)
        agree(strategy, finished is not None, "whether the run is already finished")
        if finished is not None:
            return finished
        return _train_and_publish(config, out, staging, strategy, *plan)


def _drop_empty_state(out: Path, staging: Path, created: bool) -> None:
    """While the lock is held: a run that left no state leaves no folder."""
    if staging.is_dir() and {p.name for p in staging.iterdir()} <= {"lock"}:
        # filelock detects a lock file unlinked under a waiting process and retries
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # another process may be arriving
            if created and not any(out.iterdir()):
                out.rmdir()


def check_config(config: RunConfig) -> None:
    """Check every setting that can be checked without data, before anything is written.

    Examples:
        >>> check_config(RunConfig(out=Path("runs/x"), epochs=0))
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: epochs must be a positive integer, got 0.
    """
    from catdog.models import model_spec

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


def _clear_state(staging: Path) -> None:
    """Drop a run's saved state (all but the lock); its config.json goes first, so a kill
    midway leaves state without a config, which the next run drops too."""
    (staging / "config.json").unlink(missing_ok=True)
    for path in staging.iterdir():
        if path.name != "lock":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _plan(config: RunConfig, out: Path, staging: Path, strategy):
    """Check the folder and the data: ``(summary of the finished run, None)`` when there is
    nothing to train, else ``(None, (record, pending, splits))``."""
    import keras

    from catdog.data import check_split_sizes
    from catdog.distribute import is_chief

    chief = is_chief(strategy)  # the other workers of a cluster only read the folder
    record = config_record(config)
    try:
        finished = run_record(out)
    except InvalidArgumentError as error:  # edited by hand: the run is replaced
        logger.warning("%s It is replaced when this run finishes.", error)
        finished = None
    pending = read_json(staging / "config.json")
    _check_pending(pending, record, out, staging, clear=chief)
    if pending is None and finished is not None and (out / "report.json").is_file():
        if not changed_fields(finished, record):
            try:
                summary = _finished_summary(out)
            except InvalidArgumentError as error:
                logger.warning("%s Training the run again.", error)
            else:
                logger.warning(
                    "%s already holds this finished run; nothing to train. Choose another --out "
                    "(or delete the folder) to train again.",
                    out,
                )
                return summary, None
    logger.info("%s", describe_settings(config))
    keras.utils.set_random_seed(config.seed)  # shuffling, initial weights, augmentation
    splits = load_data(config)
    check_split_sizes(splits)
    if pending is None and finished is not None and changed_fields(finished, record) and chief:
        logger.warning(
            "%s holds a finished run with another configuration (changed: %s); it is replaced "
            "when this run finishes.",
            out,
            "; ".join(changed_fields(finished, record)),
        )
    record.update(class_names=splits.class_names, splits=split_fingerprint(splits))
    if pending is not None and not splits_match(pending.get("splits"), record["splits"]):
        raise InvalidArgumentError(
            f"The data changed since the unfinished run in {str(out)!r} started (its splits "
            f"differ). Restore the data, or delete {str(staging)!r} to start afresh."
        )
    return None, (record, pending, splits)


def _train_and_publish(config, out, staging, strategy, record, pending, splits) -> dict:
    """Build the model, train it (resuming what ``staging`` holds) and, on the chief, write
    the run folder."""
    from catdog.distribute import is_chief, strategy_scope, weights_digest

    chief = is_chief(strategy)
    model = _build_checked(config, splits, strategy)
    record.update(parameters=int(model.count_params()), versions=versions())
    if config.learning_rate == "auto":
        with strategy_scope(strategy):  # the optimizer belongs to the model's strategy
            if pending is not None and "learning_rate_found" in pending:  # resuming
                found, note = pending["learning_rate_found"], pending.get("learning_rate_note")
            else:
                found, note = _find_rate(model, splits)
            rate = RunConfig.learning_rate if found is None else found
            config = replace(config, learning_rate=rate)
            _compile_for(config, model)  # the finder compiled it at its own rate
        record["learning_rate_found"] = found
        if note:
            record["learning_rate_note"] = note
    if chief:
        write_json(staging / "config.json", record)
    try:
        history, fine_tune_start, model = _fit_stages(config, splits, model, staging, strategy)
    except TrainingDivergedError:
        if chief:
            _clear_state(staging)  # nothing worth resuming
        raise
    summary = {"out": str(out), "report": None, "history": history}
    if chief:
        summary = _publish(out, staging, splits, record, history, fine_tune_start)
    return {**summary, "weights_sha256": weights_digest(model)}


def _check_pending(pending: dict | None, record: dict, out: Path, staging: Path, clear: bool):
    """Refuse to go on with an unfinished run of another configuration; with ``clear``, drop
    the leftovers of a run killed while clearing its state."""
    if pending is None:
        if clear:
            _clear_state(staging)
        return
    changed = changed_fields(pending, record)
    if changed:
        raise InvalidArgumentError(
            f"{str(out)!r} holds an unfinished run with another configuration (changed: "
            f"{'; '.join(changed)}). Rerun it with its own arguments to finish it, choose "
            f"another --out, or delete {str(staging)!r} to drop it."
        )


def _build_checked(config: RunConfig, splits, strategy):
    """Build the model (in ``strategy``'s scope) and check the fine-tuning arguments against
    it."""
    from catdog.distribute import strategy_scope
    from catdog.training import check_unfreeze_from

    with strategy_scope(strategy):
        model = _build(config, splits.class_names)
    if config.fine_tune_epochs:
        check_unfreeze_from(model, config.unfreeze_from)
    return model


def _find_rate(model, splits) -> tuple[float | None, str | None]:
    """The learning-rate finder's suggestion for ``model`` (its weights left as they were),
    or ``None`` and why, when it has none (the run then trains at the default rate)."""
    from catdog.lr_finder import lr_find

    result = lr_find(model, splits)
    if result.suggestion is None:
        note = f"{result.note}; the run trains at the default rate {RunConfig.learning_rate:g}"
        logger.warning("learning rate finder: %s", note)
        return None, note
    logger.info("learning rate finder: training with %.2g", result.suggestion)
    return result.suggestion, None


def _compile_for(config: RunConfig, model) -> None:
    """Compile ``model`` with the run's (found) learning rate, as ``train`` would have."""
    from catdog.models import compile_model

    compile_model(model, config.learning_rate, jit_compile=config.jit_compile)


def _fit_stages(config: RunConfig, splits, model, staging: Path, strategy=None):
    """Train (resuming what ``staging`` holds); return (history, fine_tune_start, model).

    Only the chief writes into ``staging``; every worker reads it, so all of them resume
    from the same point.
    """
    from catdog.distribute import agree, is_chief, strategy_scope
    from catdog.saving import load_model, save_model
    from catdog.training import fine_tune, merge_histories, train

    chief = is_chief(strategy)
    fitted = read_json(staging / "fitted.json")
    stage1_done = staging / "stage1.json"
    stage = 2 if fitted is not None else 1 if stage1_done.exists() else 0
    agree(strategy, stage, "the training stage to resume")
    if stage == 2:
        logger.warning("Resuming: training finished before; writing the run's files.")
        return fitted["history"], fitted["fine_tune_start"], model
    best = staging / "best.keras"
    common = _stage_arguments(config, best, strategy, chief)
    if stage == 1:
        logger.warning("Resuming: the first training stage is already done.")
        first = json.loads(stage1_done.read_text())
        with strategy_scope(strategy):
            model = load_model(staging / "stage1.keras")
    else:
        first = train(
            model,
            splits,
            config.epochs,
            learning_rate=config.learning_rate,
            backup_dir=staging / "stage1",
            cache_features=config.cache_features,
            augment_copies=config.augment_copies,
            **common,
        ).history
        if config.fine_tune_epochs and chief:
            save_model(model, staging / "stage1.keras")
            write_json(stage1_done, first)
    histories = [first]
    fine_tune_start = None
    if config.fine_tune_epochs:
        fine_tune_start = len(next(iter(first.values())))
        second = fine_tune(
            model,
            splits,
            unfreeze_from=config.unfreeze_from,
            learning_rate=config.fine_tune_learning_rate,
            epochs=config.fine_tune_epochs,
            history=first,  # numbers the epochs on; the checkpoint must beat stage 1's best
            backup_dir=staging / "stage2",
            **common,
        )
        histories.append(second.history)
    history = merge_histories(*histories)
    if chief:
        if not best.exists():  # no validation improvement was ever recorded
            save_model(model, best)
        fitted = {"history": history, "fine_tune_start": fine_tune_start}
        write_json(staging / "fitted.json", fitted)
    return history, fine_tune_start, model


def _stage_arguments(config: RunConfig, best: Path, strategy, chief: bool) -> dict:
    """The arguments both training stages pass to ``train``."""
    callbacks = []
    if config.tensorboard and chief:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(config.tensorboard)))
    return dict(
        checkpoint=best,
        early_stopping=config.early_stopping or None,
        class_weight=config.class_weight,
        jit_compile=config.jit_compile,
        callbacks=callbacks,
        verbose=config.verbose,
        strategy=strategy,
    )


RUN_FILES = (
    "model.keras",
    "class_names.json",
    "history.json",
    "report.txt",
    "report.json",
    "samples.png",
    "history.png",
    "confusion_matrix.png",
    "misclassified.png",
    "README.md",
    "config.json",  # last: a folder whose config.json is new holds the new run whole
)
"""The files of a finished run folder, in the order publishing swaps them in."""


def _publish(out: Path, staging: Path, splits, record, history, fine_tune_start) -> dict:
    """Write the run's files from the finished training state, then drop the state.

    All or nothing: every file is first written into ``staging/publish``; only once all are
    there are they swapped into ``out`` together (the previous run's files moved aside into
    ``staging/previous`` and put back if any step fails), so a failure at any point leaves the
    previous run whole.
    """
    from catdog import plotting
    from catdog.card import is_foreign_readme, write_model_card
    from catdog.evaluation import evaluate
    from catdog.saving import load_model

    previous = staging / "previous"
    _restore(previous, out, [])  # a swap killed midway: put the previous run back first
    new = staging / "publish"
    shutil.rmtree(new, ignore_errors=True)  # a publish killed midway
    new.mkdir()
    best = staging / "best.keras"
    model = load_model(best)
    report = evaluate(model, splits)
    shutil.copyfile(best, new / "model.keras")
    write_json(new / "class_names.json", splits.class_names)
    write_json(new / "config.json", record)
    write_json(new / "history.json", {"history": history, "fine_tune_start": fine_tune_start})
    report.save(new)
    plotting.plot_samples(splits, path=new / "samples.png")
    plotting.plot_history(
        history,
        fine_tune_start=fine_tune_start,
        baseline=report.baseline,
        fine_tune_label=STAGE_BOUNDARY if record.get("cache_features") else "fine-tuning",
        path=new / "history.png",
    )
    plotting.plot_confusion_matrix(report, path=new / "confusion_matrix.png")
    plotting.plot_misclassified(  # with Grad-CAM: what the model took as evidence
        report, image_size=splits.image_size, model=model, path=new / "misclassified.png"
    )
    if is_foreign_readme(out / "README.md"):  # the user's own README.md stays
        logger.warning(
            "No model card written: %r is not a catdog model card; catdog will not overwrite "
            "it. Move it, or train into another folder.",
            str(out / "README.md"),
        )
    else:
        write_model_card(new)
    _swap_in(new, out, previous)
    _clear_state(staging)  # the lock stays until the caller releases it
    return {"out": str(out), "report": report, "history": history}


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target`` (one folder tree: atomic)."""
    os.replace(source, target)


def _swap_in(new: Path, out: Path, previous: Path) -> None:
    """Move every file of ``new`` into ``out``, the files they replace into ``previous``; on
    any failure put the previous files back and remove the new ones."""
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    placed: list[str] = []
    try:
        for name in RUN_FILES:
            if not (new / name).exists():
                continue
            if (out / name).exists():
                _move(out / name, previous / name)
            placed.append(name)
            _move(new / name, out / name)
    except BaseException:
        _restore(previous, out, placed)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(new, ignore_errors=True)


def _restore(previous: Path, out: Path, placed: list[str]) -> None:
    """Undo a swap: remove the new files ``placed`` in ``out``, move ``previous``'s back."""
    if not previous.is_dir():
        return
    for name in placed:
        if not (previous / name).exists():  # no previous file to put back in its place
            (out / name).unlink(missing_ok=True)
    for kept in previous.iterdir():
        _move(kept, out / kept.name)
    shutil.rmtree(previous, ignore_errors=True)


def _finished_summary(out: Path) -> dict:
    """The summary of the finished run in ``out``, from its files (checked)."""
    from catdog.evaluation import Report

    path = out / "report.json"
    report = Report.from_dict(read_run_file(path), source=repr(str(path)))
    history = read_run_file(out / "history.json") or {}
    if not isinstance(history, dict) or not isinstance(history.get("history", {}), dict):
        raise InvalidArgumentError(
            f"{str(out / 'history.json')!r}: field 'history' must be an object of per-epoch "
            "metrics; the file was edited or damaged. Restore it (catdog train wrote it)."
        )
    return {
        "out": str(out),
        "report": report,
        "history": history.get("history", {}),
        "finished_before": True,
    }
