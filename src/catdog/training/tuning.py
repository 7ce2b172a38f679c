"""Hyperparameter search over the catdog zoo with KerasTuner (needs the ``tuner`` extra).

[`tune`][catdog.training.tuning.tune] runs a search on catdog splits and writes a summary and
the best model; the space it searches is
[`CatDogHyperModel`][catdog.training.search_space.CatDogHyperModel] (in
[`catdog.training.search_space`][catdog.training.search_space], also importable from here).
Restrict the space the usual KerasTuner way: pass ``families=`` or a
``keras_tuner.HyperParameters`` with ``hp.Fixed`` / ``hp.Choice`` entries (and
``tune_new_entries=False`` to fix everything else at defaults); ``tune`` attaches the space's
conditions to them (``CatDogHyperModel.condition`` does it for tuners you create yourself).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from catdog._rules import (
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_SEED,
    TUNERS,
    check_choice,
    check_int,
    check_positive_number,
    check_single_label_data,
)
from catdog.data.pipelines import Splits
from catdog.errors import InvalidArgumentError
from catdog.io import write_json
from catdog.models.saving import save_model
from catdog.training.cluster import wait_for_peers
from catdog.training.fit import attach_class_names
from catdog.training.search_space import (  # noqa: F401  (re-exported: import them from here)
    FAMILIES,
    SMALL_BACKBONES,
    CatDogHyperModel,
    check_backbones,
    check_families,
    kt,
    possible_values,
    validate_hyperparameters,
)

logger = logging.getLogger("catdog")


def tune(
    splits: Splits,
    tuner: str = "random",
    max_trials: int = 10,
    *,
    epochs: int = 5,
    directory: str | os.PathLike = "tuning",
    project_name: str = "catdog",
    overwrite: bool = False,
    families: Sequence[str] = FAMILIES,
    weights: str | os.PathLike | None = "imagenet",
    backbones: Sequence[str] | None = None,
    hypermodel: kt.HyperModel | None = None,
    hyperparameters: kt.HyperParameters | None = None,
    tune_new_entries: bool = True,
    objective: str = "val_accuracy",
    seed: int | None = DEFAULT_SEED,
    callbacks: Sequence = (),
    verbose: int = 1,
    cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT,
):
    """Run a KerasTuner search over the catdog space on ``splits``; return the tuner.

    Results go to ``directory/project_name``: KerasTuner's trial files, ``summary.json`` (best
    hyperparameters and every trial's score) and ``best_model.keras`` (the best trial's
    checkpoint, named with the data's classes). Running the same call again resumes the search
    there (finished trials are not repeated) unless ``overwrite=True``.

    Distributed search is KerasTuner's own (see
    [`distributed_role`][catdog.training.tuning.distributed_role]): run the same call on every
    process, with ``directory`` on storage they share; the chief
    serves the oracle and alone writes ``summary.json`` and ``best_model.keras``, the
    workers run the trials.

    Args:
        splits: the data; trials train on ``train`` and are scored on ``validation``.
        tuner: ``"random"``, ``"hyperband"`` or ``"bayesian"`` (``TUNERS``).
        max_trials: the trials of a random or Bayesian search.
        epochs: epochs per trial (Hyperband: the most epochs of a trial, its ``max_epochs``).
        directory: the folder of the search's project folder.
        project_name: the search's folder inside ``directory``.
        overwrite: start the search afresh instead of resuming it.
        families: the registered models to search (default
            [`FAMILIES`][catdog.training.search_space.FAMILIES]): models of family ``"cnn"``
            and pretrained ones.
        weights: the pretrained models' base weights: ``"imagenet"``, ``None`` or a file.
        backbones: the ``transfer`` model's backbone choices (default
            [`SMALL_BACKBONES`][catdog.training.search_space.SMALL_BACKBONES]; MobileNetV2
            alone with a weights file, which fits one backbone).
        hypermodel: your own ``keras_tuner.HyperModel`` instead of ``CatDogHyperModel``.
        hyperparameters: a ``keras_tuner.HyperParameters`` restricting the space
            (``hp.Fixed``, ``hp.Choice``...); its values are checked before any trial.
        tune_new_entries: whether hyperparameters not in ``hyperparameters`` are searched
            (``False`` keeps them at their defaults).
        objective: the metric to maximise (or minimise, for a loss).
        seed: the tuner's seed.
        callbacks: Keras callbacks for every trial's ``fit`` (``keras.callbacks.TensorBoard``:
            KerasTuner gives each trial its own log folder).
        verbose: passed to ``fit``.
        cluster_timeout: the seconds a worker of a distributed search waits for the oracle
            to answer before raising [`ClusterError`][catdog.errors.ClusterError].

    Examples:
        ```python
        hp = kt.HyperParameters(); hp.Fixed("family", "baseline")
        tuner = tune(splits, "random", max_trials=5, hyperparameters=hp)
        tuner.get_best_hyperparameters()[0].values
        ```
    """
    _check_arguments(tuner, max_trials, epochs, cluster_timeout)
    check_single_label_data(splits, "tune")
    role, overwrite = _role(overwrite)
    if hyperparameters is not None:
        validate_hyperparameters(hyperparameters)
        families, backbones = _searched(hyperparameters, families, backbones)
    hypermodel = hypermodel or CatDogHyperModel(
        input_shape=(*splits.image_size, 3),
        class_names=splits.class_names,
        families=families,
        weights=weights,
        backbones=backbones,
    )
    if hyperparameters is not None and isinstance(hypermodel, CatDogHyperModel):
        hyperparameters = hypermodel.condition(hyperparameters)
    _join(role, cluster_timeout)
    search = _make_tuner(
        tuner,
        hypermodel,
        max_trials=max_trials,
        epochs=epochs,
        objective=objective,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
    )
    search.search(  # the chief of a distributed search serves the oracle until it is done
        splits.train,
        validation_data=splits.validation,
        verbose=verbose,
        shuffle=False,
        callbacks=list(callbacks),
        **({} if tuner == "hyperband" else {"epochs": epochs}),
    )
    if role in (None, "chief"):
        write_summary(search, Path(directory) / project_name, class_names=splits.class_names)
    return search


def _check_arguments(tuner: str, max_trials: int, epochs: int, cluster_timeout: float) -> None:
    check_choice("tuner", tuner, TUNERS)
    check_int("max_trials", max_trials)
    check_int("epochs", epochs)
    check_positive_number("cluster_timeout", cluster_timeout)


def _role(overwrite: bool) -> tuple[str | None, bool]:
    """This process's part in a distributed search, and whether it may start afresh."""
    role = distributed_role()
    if overwrite and role not in (None, "chief"):
        overwrite = False  # a worker starting afresh would delete the chief's search
        logger.warning("%s: --overwrite is the chief's to apply; ignored on a worker.", role)
    return role, overwrite


def _searched(hyperparameters: kt.HyperParameters, families, backbones) -> tuple:
    """The families and backbones that ``hyperparameters`` restrict the search to: only those
    are built (and their weights downloaded)."""
    for entry in hyperparameters.space:
        if entry.name == "family":
            families = possible_values(entry)
        elif entry.name == "backbone":
            backbones = possible_values(entry)
    return families, backbones


def _join(role: str | None, cluster_timeout: float) -> None:
    """A worker waits for the oracle (KerasTuner's client would wait forever); the chief
    says where it serves it."""
    if role not in (None, "chief"):
        wait_for_oracle(role, cluster_timeout)
    elif role == "chief":
        logger.info(
            "chief: serving the oracle at %s:%s for the workers",
            os.environ["KERASTUNER_ORACLE_IP"],
            os.environ["KERASTUNER_ORACLE_PORT"],
        )


def _make_tuner(kind: str, hypermodel, *, max_trials: int, epochs: int, **common):
    """KerasTuner's tuner ``kind`` (one of ``TUNERS``) over ``hypermodel``."""
    common["max_consecutive_failed_trials"] = 10
    if kind == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=epochs, factor=3, **common)
    searches = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization}
    return searches[kind](hypermodel, max_trials=max_trials, **common)


def distributed_role(environ: dict | None = None) -> str | None:
    """This process's part in a distributed KerasTuner search: ``None`` (not distributed),
    ``"chief"`` (it serves the oracle) or the worker's tuner ID; the variables are checked.

    KerasTuner reads ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
    ``KERASTUNER_ORACLE_PORT``; a tuner ID containing ``chief`` makes the chief.

    Examples:
        >>> distributed_role({})
        >>> distributed_role({"KERASTUNER_TUNER_ID": "tuner1", "KERASTUNER_ORACLE_IP": "10.0.0.1",
        ...                   "KERASTUNER_ORACLE_PORT": "8000"})
        'tuner1'
    """
    environ = os.environ if environ is None else environ
    names = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
    given = [name for name in names if name in environ]  # KerasTuner's rule: set at all
    if "KERASTUNER_ORACLE_IP" not in given:
        return None
    bad = [name for name in names if name not in given]
    if "KERASTUNER_TUNER_ID" in given and not environ["KERASTUNER_TUNER_ID"].strip():
        bad.append("KERASTUNER_TUNER_ID=''")
    if not environ["KERASTUNER_ORACLE_IP"].strip():
        bad.append(f"KERASTUNER_ORACLE_IP={environ['KERASTUNER_ORACLE_IP']!r}")
    port = environ.get("KERASTUNER_ORACLE_PORT")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        bad.append(f"KERASTUNER_ORACLE_PORT={port!r}")
    if bad:
        raise InvalidArgumentError(
            f"A distributed search needs {', '.join(names)} on every process (the tuner ID "
            "'chief' on the one serving the oracle, e.g. tuner0, tuner1 on the others; the "
            f"chief's address and a port number from 1 to 65535); missing or invalid: "
            f"{', '.join(bad)}."
        )
    tuner_id = environ["KERASTUNER_TUNER_ID"]
    return "chief" if "chief" in tuner_id else tuner_id


def wait_for_oracle(
    role: str, timeout: float = DEFAULT_CLUSTER_TIMEOUT, environ: dict | None = None
) -> None:
    """Wait until the oracle at ``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`` answers;
    else raise [`ClusterError`][catdog.errors.ClusterError] after ``timeout`` seconds.

    A worker of a distributed search calls it before KerasTuner, whose client waits for the
    oracle forever and in silence (see
    [`wait_for_peers`][catdog.training.cluster.wait_for_peers]).
    """
    environ = os.environ if environ is None else environ
    ip, port = environ["KERASTUNER_ORACLE_IP"], environ["KERASTUNER_ORACLE_PORT"]
    address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    wait_for_peers(
        {"the oracle (the chief)": address},
        timeout,
        who=role,
        hint="Start the chief (KERASTUNER_TUNER_ID=chief) with the same command, check "
        "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT and that the port is open, or wait "
        "longer with --cluster-timeout.",
    )


def write_summary(
    search, folder: str | os.PathLike, class_names: Sequence[str] | None = None
) -> dict:
    """Write ``summary.json`` and ``best_model.keras`` of a finished search into ``folder``.

    ``class_names`` are given to a best model that does not carry its own.
    """
    folder = Path(folder)
    trials = search.oracle.get_best_trials(num_trials=len(search.oracle.trials))
    summary = {
        "tuner": type(search).__name__,
        "objective": search.oracle.objective.name,
        "best_hyperparameters": trials[0].hyperparameters.values if trials else None,
        "best_score": trials[0].score if trials else None,
        "trials": [
            {
                "trial_id": t.trial_id,
                "status": t.status,
                "score": t.score,
                "hyperparameters": t.hyperparameters.values,
            }
            for t in sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
        ],
    }
    write_json(folder / "summary.json", summary)
    if trials:
        # KerasTuner rebuilds the best model with a fresh optimizer and loads the trial's
        # checkpoint into it, and Keras warns that the optimizer's saved state is skipped. No
        # public API builds the optimizer first, so this one warning is matched by its text.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            best = search.get_best_models(1)[0]
        if class_names:
            attach_class_names(best, class_names)
        save_model(best, folder / "best_model.keras")
    return summary
