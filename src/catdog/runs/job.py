"""The end-to-end job behind ``catdog train``: data, model, training, fine-tuning, report.

Everything lands in one run folder. While a run trains, its state lives in the folder's
``.resume/`` sub-folder (a lock, the configuration, checkpoints, backups); the run's files
(model, class names, configuration, history, reports, figures) are written only once training
has finished, so a run that fails or is interrupted never changes what the folder held
before. Rerunning the same call resumes an interrupted run, finishes one killed after
training, and does nothing for a finished one."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from pathlib import Path

from catdog.data import pipelines
from catdog.errors import InvalidArgumentError, TrainingDivergedError
from catdog.io import file_lock, read_json, write_json
from catdog.runs.config import (
    ADDED_SETTINGS_BEFORE,
    RunConfig,
    changed_fields,
    check_config,
    config_record,
    describe_settings,
    resolve_defaults,
)
from catdog.runs.data import demo_data, load_data, load_splits  # noqa: F401 (their old home)
from catdog.runs.publish import clear_state, drop_empty_state, finished_summary, publish_run
from catdog.runs.record import RunFolder, split_fingerprint, splits_match, versions
from catdog.timings import Timings
from catdog.training import lr_finder

logger = logging.getLogger("catdog")


def _build(config: RunConfig, class_names: list[str]):
    """The configured model, with one output per class (and the names, if its factory takes
    them; otherwise ``train`` gives a catdog model its names)."""
    from catdog.models.registry import build_model, model_spec

    spec = model_spec(config.model)
    kwargs = {"num_classes": len(class_names), **config.model_kwargs}
    if spec.takes_class_names:
        kwargs = {"class_names": class_names, **config.model_kwargs}
    if spec.pretrained:
        kwargs.setdefault("weights", config.weights)
    return build_model(
        config.model,
        input_shape=(config.image_size, config.image_size, 3),
        precision=config.precision,
        **kwargs,
    )


# ----------------------------------------------------------------------------- the job
def run_training(config: RunConfig, strategy=None, timings: Timings | None = None) -> dict:
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

    ``report.json`` records where the run's time went (``timings``: seconds per phase, see
    [`Timings`][catdog.timings.Timings]); pass ``timings`` to have it count from earlier
    (``catdog train`` adds the process's start-up).

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
    from catdog.training.distribute import agree, failures_shared, is_chief, make_strategy, task_of

    timings = timings or Timings()
    with timings.phase("imports"):
        import keras  # noqa: F401 (TensorFlow and Keras load here, once)
    config = resolve_defaults(config)
    check_config(config)
    if strategy is None:
        strategy = make_strategy(config.strategy, config.cluster_timeout)
    if config.learning_rate == "auto" and task_of(strategy)[0] is not None:
        raise InvalidArgumentError(
            "--learning-rate auto runs on one machine: find the rate with a single-worker run "
            "(its config.json records learning_rate_found) and pass it to the cluster."
        )
    folder = RunFolder(config.out)
    out, created = folder.path, not folder.path.exists()
    with contextlib.ExitStack() as held:
        with failures_shared(strategy):  # every check, on every worker, before any training
            if out.exists() and not out.is_dir():
                raise InvalidArgumentError(
                    f"The run folder {str(out)!r} is a file; choose a folder."
                )
            if is_chief(strategy):  # the chief holds the lock and owns the folder
                held.enter_context(
                    file_lock(
                        folder.lock,
                        wait=False,
                        busy=f"Another catdog train is writing into {str(out)!r} right now. "
                        "Wait for it to finish, or choose another --out.",
                    )
                )
                held.callback(drop_empty_state, folder, created)  # runs before unlocking
            finished, plan = _plan(config, folder, strategy, timings)
        agree(strategy, finished is not None, "whether the run is already finished")
        if finished is not None:
            return finished
        return _train_and_publish(config, folder, strategy, timings, *plan)


def _plan(config: RunConfig, folder: RunFolder, strategy, timings: Timings):
    """Check the folder and the data: ``(summary of the finished run, None)`` when there is
    nothing to train, else ``(None, (record, pending, splits))``."""
    import keras

    from catdog.training.distribute import is_chief

    chief = is_chief(strategy)  # the other workers of a cluster only read the folder
    out = folder.path
    record = config_record(config)
    try:
        finished = folder.record()
    except InvalidArgumentError as error:  # edited by hand: the run is replaced
        logger.warning("%s It is replaced when this run finishes.", error)
        finished = None
    if finished is not None:  # a run finished by an older catdog had no calibration
        finished = {**ADDED_SETTINGS_BEFORE, **finished}
    pending = read_json(folder.pending_config)
    _check_pending(pending, record, folder, clear=chief)
    if pending is None and finished is not None and not changed_fields(finished, record):
        summary = _finished_run(folder)
        if summary is not None:
            return summary, None
    logger.info("%s", describe_settings(config))
    keras.utils.set_random_seed(config.seed)  # shuffling, initial weights, augmentation
    with timings.phase("data"):
        splits = load_data(config)
        pipelines.check_split_sizes(splits)
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
            f"differ). Restore the data, or delete {str(folder.state)!r} to start afresh."
        )
    return None, (record, pending, splits)


def _finished_run(folder: RunFolder) -> dict | None:
    """The summary of the finished run of this configuration in ``folder``; ``None`` when its
    files are missing or damaged (the run is then trained again)."""
    if not folder.report.is_file():
        return None
    try:
        summary = finished_summary(folder)
    except InvalidArgumentError as error:
        logger.warning("%s Training the run again.", error)
        return None
    logger.warning(
        "%s already holds this finished run; nothing to train. Choose another --out (or "
        "delete the folder) to train again.",
        folder.path,
    )
    return summary


def _train_and_publish(config, folder, strategy, timings, record, pending, splits) -> dict:
    """Build the model, train it (resuming what ``folder.state`` holds) and, on the chief,
    write the run folder."""
    from catdog.training.distribute import is_chief, strategy_scope, weights_digest

    chief = is_chief(strategy)
    with timings.phase("model"):
        model = _build_checked(config, splits, strategy)
    record.update(parameters=int(model.count_params()), versions=versions())
    if config.learning_rate == "auto":
        with strategy_scope(strategy):  # the optimizer belongs to the model's strategy
            if pending is not None and "learning_rate_found" in pending:  # resuming
                found, note = pending["learning_rate_found"], pending.get("learning_rate_note")
            else:
                with timings.phase("learning-rate finder"):
                    found, note = _find_rate(model, splits)
            rate = RunConfig.learning_rate if found is None else found
            config = replace(config, learning_rate=rate)
            _compile_for(config, model)  # the finder compiled it at its own rate
        record["learning_rate_found"] = found
        if note:
            record["learning_rate_note"] = note
    if chief:
        write_json(folder.pending_config, record)
    try:
        history, fine_tune_start, model, features = _fit_stages(
            config, splits, model, folder, strategy, timings
        )
    except TrainingDivergedError:
        if chief:
            clear_state(folder)  # nothing worth resuming
        raise
    summary = {"out": str(folder.path), "report": None, "history": history}
    if chief:
        if fine_tune_start is not None:  # the features describe the base before fine-tuning
            features = None
        summary = publish_run(
            folder, splits, record, history, fine_tune_start, features, timings=timings
        )
    return {**summary, "weights_sha256": weights_digest(model)}


def _check_pending(pending: dict | None, record: dict, folder: RunFolder, clear: bool):
    """Refuse to go on with an unfinished run of another configuration; with ``clear``, drop
    the leftovers of a run killed while clearing its state."""
    if pending is None:
        if clear:
            clear_state(folder)
        return
    changed = changed_fields(pending, record)
    if changed:
        raise InvalidArgumentError(
            f"{str(folder.path)!r} holds an unfinished run with another configuration (changed: "
            f"{'; '.join(changed)}). Rerun it with its own arguments to finish it, choose "
            f"another --out, or delete {str(folder.state)!r} to drop it (first move back any files "
            "of the earlier run it holds in 'previous/')."
        )


def _build_checked(config: RunConfig, splits, strategy):
    """Build the model (in ``strategy``'s scope) and check the fine-tuning arguments against
    it."""
    from catdog.models.prototypes import prototype_head
    from catdog.models.transfer import check_unfreeze_from
    from catdog.training.distribute import strategy_scope

    with strategy_scope(strategy):
        model = _build(config, splits.class_names)
    if prototype_head(model) is not None and (
        config.fine_tune_epochs or config.learning_rate == "auto"
    ):
        raise InvalidArgumentError(
            f"--model {config.model} is set from its images, not trained: leave out "
            "--fine-tune-epochs and --learning-rate auto."
        )
    if config.fine_tune_epochs:
        check_unfreeze_from(model, config.unfreeze_from)
    return model


def _find_rate(model, splits) -> tuple[float | None, str | None]:
    """The learning-rate finder's suggestion for ``model`` (its weights left as they were),
    or ``None`` and why, when it has none (the run then trains at the default rate)."""
    result = lr_finder.lr_find(model, splits)
    if result.suggestion is None:
        note = f"{result.note}; the run trains at the default rate {RunConfig.learning_rate:g}"
        logger.warning("learning rate finder: %s", note)
        return None, note
    logger.info("learning rate finder: training with %.2g", result.suggestion)
    return result.suggestion, None


def _compile_for(config: RunConfig, model) -> None:
    """Compile ``model`` with the run's (found) learning rate, as ``train`` would have."""
    from catdog.models.classifier import compile_model

    compile_model(model, config.learning_rate, jit_compile=config.jit_compile)


def _fit_stages(config: RunConfig, splits, model, folder: RunFolder, strategy, timings):
    """Train (resuming what ``folder.state`` holds); return (history, fine_tune_start, model,
    the base's [`Features`][catdog.training.feature_cache.Features] when they were cached).

    Only the chief writes into the state; every worker reads it, so all of them resume from
    the same point.
    """
    from catdog.models.saving import save_model
    from catdog.training.distribute import agree, is_chief
    from catdog.training.fine_tune import fine_tune, merge_histories

    chief, staging, best = is_chief(strategy), folder.state, folder.best
    fitted = read_json(staging / "fitted.json")
    stage = 2 if fitted is not None else 1 if (staging / "stage1.json").exists() else 0
    agree(strategy, stage, "the training stage to resume")
    if stage == 2:
        logger.warning("Resuming: training finished before; writing the run's files.")
        return fitted["history"], fitted["fine_tune_start"], model, None
    common = _stage_arguments(config, best, strategy, chief)
    first, model, features = _first_stage(
        config, splits, model, staging, stage == 1, common, strategy, timings
    )
    histories = [first]
    fine_tune_start = None
    if config.fine_tune_epochs:
        fine_tune_start = len(next(iter(first.values())))
        with timings.phase("fine-tuning"):
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
    return history, fine_tune_start, model, features


def _first_stage(config, splits, model, staging: Path, done: bool, common, strategy, timings):
    """Train the first stage, or read it back when it is ``done`` (a run that stopped while
    fine-tuning); return its history, the model and the base's features (``None`` unless
    cached: computed once here, for training, calibration and the run's embeddings)."""
    from catdog.models.saving import load_model, save_model
    from catdog.training.distribute import is_chief, strategy_scope
    from catdog.training.feature_cache import extract_split_features
    from catdog.training.fit import train

    if done:
        logger.warning("Resuming: the first training stage is already done.")
        first = json.loads((staging / "stage1.json").read_text())
        with strategy_scope(strategy):
            return first, load_model(staging / "stage1.keras"), None
    features = None
    if config.cache_features:
        with timings.phase("features"):  # decoding and the base's pass over every image
            features = extract_split_features(
                model, splits, config.augment_copies, engine="auto", strategy=strategy
            )
    with timings.phase("training"):
        first = train(
            model,
            splits,
            config.epochs,
            learning_rate=config.learning_rate,
            backup_dir=staging / "stage1",
            cache_features=config.cache_features,
            augment_copies=config.augment_copies,
            features=features,
            **common,
        ).history
    if config.fine_tune_epochs and is_chief(strategy):
        save_model(model, staging / "stage1.keras")
        write_json(staging / "stage1.json", first)
    return first, model, features


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
