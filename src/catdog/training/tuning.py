"""A KerasTuner search space over the catdog zoo (needs KerasTuner: the ``tuner`` extra).

``CatDogHyperModel`` builds compiled catdog models from hyperparameters; ``tune`` runs a
search on catdog splits and writes a summary and the best model. Restrict the space the usual
KerasTuner way: pass ``families=`` or a ``keras_tuner.HyperParameters`` with ``hp.Fixed`` /
``hp.Choice`` entries (and ``tune_new_entries=False`` to fix everything else at defaults);
``tune`` attaches the space's conditions to them (``CatDogHyperModel.condition`` does it for
tuners you create yourself).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from catdog.errors import InvalidArgumentError, MissingExtraError

try:
    import keras_tuner as kt
except ImportError as error:  # pragma: no cover - exercised by a test in a subprocess
    raise MissingExtraError(
        "catdog.training.tuning needs KerasTuner, an optional dependency: pip install keras-tuner "
        'tensorboard (or install catdog with its extra: pip install ".[tuner]" in its source)'
    ) from error

from catdog._rules import (
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_INPUT_SHAPE,
    DEFAULT_SEED,
    check_int,
    check_positive_number,
    is_int,
    is_number_in,
    is_positive_number,
)
from catdog.data.pipelines import Splits
from catdog.deploy.export import save_model
from catdog.io import write_json
from catdog.models.backbones import BACKBONES
from catdog.models.classifier import compile_model
from catdog.models.registry import build_model

logger = logging.getLogger("catdog")

FAMILIES = ("baseline", "augmented", "preprocessed", "transfer")
CNN_FAMILIES = FAMILIES[:3]
AUGMENTED_FAMILIES = FAMILIES[1:]
TUNERS = ("random", "hyperband", "bayesian")
SMALL_BACKBONES = ("mobilenet_v2", "efficientnet_b0", "mobilenet_v3_small")
"""The ``backbone`` choices of the ``transfer`` family unless ``backbones=`` is given."""


class CatDogHyperModel(kt.HyperModel):
    """The catdog search space, as a ``keras_tuner.HyperModel`` returning compiled models.

    Hyperparameters (conditional ones only exist where they apply):

    - ``family``: which zoo architecture (``families`` restricts it);
    - CNN families: ``conv_blocks`` 1-4, ``filters_{i}`` per block, ``kernel_size``
      (3, 5, 7, 9), ``pool_size`` (2, 3, 4); blocks that would shrink the feature map of a
      small input to nothing are left out of that trial's model;
    - ``transfer``: ``backbone`` (``backbones`` restricts it; default
      [`SMALL_BACKBONES`][catdog.training.tuning.SMALL_BACKBONES], or MobileNetV2 alone with a
      weights file), ``pooling`` (max/avg), ``fine_tune_base`` and then ``unfreeze_from``
      (a fraction of the base's depth, 0.5-0.9);
    - head: ``dense_units``, ``dropout``;
    - augmenting families: ``augment``, then ``flip``, ``rotation``, ``zoom``, ``contrast``;
    - ``learning_rate`` (log scale).

    Examples:
        ```python
        hypermodel = CatDogHyperModel(input_shape=(96, 96, 3), families=["baseline"])
        tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=5)
        ```
    """

    def __init__(
        self,
        input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
        num_classes: int = 2,
        *,
        class_names: Sequence[str] | None = None,
        families: Sequence[str] = FAMILIES,
        weights: str | os.PathLike | None = "imagenet",
        backbones: Sequence[str] | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        families = list(families)
        unknown = [f for f in families if f not in FAMILIES]
        if not families or unknown:
            raise InvalidArgumentError(
                f"families must be a non-empty subset of {FAMILIES}, got {families!r}."
            )
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.class_names = list(class_names) if class_names else None
        if self.class_names:
            self.num_classes = len(self.class_names)
        self.families, self.weights = families, weights
        self.backbones = check_backbones(backbones, weights)

    def conditions(self, name: str) -> list[tuple[str, list]]:
        """The ``(parent, values)`` conditions under which hyperparameter ``name`` exists."""
        cnn = [f for f in CNN_FAMILIES if f in self.families]
        transfer = [f for f in ("transfer",) if f in self.families]
        augmenting = [f for f in AUGMENTED_FAMILIES if f in self.families]
        if name in ("conv_blocks", "kernel_size", "pool_size"):
            return [("family", cnn)]
        if name.startswith("filters_") and name[8:].isdigit():
            return [("family", cnn), ("conv_blocks", list(range(int(name[8:]) + 1, 5)))]
        if name in ("backbone", "pooling", "fine_tune_base"):
            return [("family", transfer)]
        if name == "unfreeze_from":
            return [("family", transfer), ("fine_tune_base", [True])]
        if name == "augment":
            return [("family", augmenting)]
        if name in ("flip", "rotation", "zoom", "contrast"):
            return [("family", augmenting), ("augment", [True])]
        return []

    def scope(self, hp: kt.HyperParameters, name: str) -> contextlib.ExitStack:
        """Enter the conditional scopes of hyperparameter ``name``."""
        stack = contextlib.ExitStack()
        for parent, values in self.conditions(name):
            stack.enter_context(hp.conditional_scope(parent, values))
        return stack

    def build(self, hp: kt.HyperParameters):
        def get(kind: str, name: str, *args, **kwargs):
            with self.scope(hp, name):
                return getattr(hp, kind)(name, *args, **kwargs)

        family = hp.Choice("family", self.families)
        kwargs: dict = {}
        if family in CNN_FAMILIES:
            blocks = get("Int", "conv_blocks", 1, 4, default=2)
            kwargs["filters"] = [
                get("Int", f"filters_{i}", 8, 128, step=8, default=16 * 2 ** min(i, 2))
                for i in range(blocks)
            ]
            kernel = kwargs["kernel_size"] = get("Choice", "kernel_size", [3, 5, 7, 9], default=3)
            pool = kwargs["pool_size"] = get("Choice", "pool_size", [2, 3, 4], default=2)
            # leave out blocks that would shrink the feature map to nothing
            kwargs["filters"] = kwargs["filters"][
                : _blocks_that_fit(self.input_shape, kernel, pool, blocks)
            ]
        unfreeze_from = None
        if family == "transfer":
            kwargs["backbone"] = get("Choice", "backbone", self.backbones)
            kwargs["pooling"] = get("Choice", "pooling", ["max", "avg"])
            kwargs["weights"] = self.weights
            if get("Boolean", "fine_tune_base", default=False):
                unfreeze_from = get("Float", "unfreeze_from", 0.5, 0.9, step=0.1, default=0.7)
        kwargs["dense_units"] = get("Int", "dense_units", 16, 256, sampling="log", default=64)
        kwargs["dropout"] = get("Float", "dropout", 0.0, 0.5, step=0.1, default=0.0)
        if family in AUGMENTED_FAMILIES:
            if get("Boolean", "augment", default=True):
                flip = get(
                    "Choice",
                    "flip",
                    ["horizontal", "vertical", "horizontal_and_vertical", "none"],
                    default="horizontal_and_vertical",
                )
                kwargs["flip"] = None if flip == "none" else flip
                kwargs["rotation"] = get("Float", "rotation", 0.0, 0.3, step=0.05, default=0.2)
                kwargs["zoom"] = get("Float", "zoom", 0.0, 0.3, step=0.1, default=0.0)
                kwargs["contrast"] = get("Float", "contrast", 0.0, 0.3, step=0.1, default=0.0)
            else:
                kwargs.update(flip=None, rotation=None)
        learning_rate = get("Float", "learning_rate", 1e-5, 1e-2, sampling="log", default=1e-3)
        model = build_model(
            family,
            input_shape=self.input_shape,
            num_classes=None if self.class_names else self.num_classes,
            class_names=self.class_names,
            **kwargs,
        )
        if unfreeze_from is not None:
            from catdog.models.transfer import unfreeze_base

            unfreeze_base(model, unfreeze_from)
        return compile_model(model, learning_rate)

    def condition(self, hyperparameters: kt.HyperParameters) -> kt.HyperParameters:
        """Return a copy of ``hyperparameters`` with this space's conditions attached.

        Lets callers write ``hp.Fixed("kernel_size", 5)`` without repeating the conditional
        scopes that ``kernel_size`` lives in; entries that already have conditions are kept.
        Works on KerasTuner's public serialized form (``get_config``/``from_config``), where a
        condition is a ``Parent`` entry.
        """
        config = hyperparameters.get_config()
        for entry in config["space"]:
            if not entry["config"].get("conditions"):
                entry["config"]["conditions"] = [
                    {"class_name": "Parent", "config": {"name": parent, "values": list(values)}}
                    for parent, values in self.conditions(entry["config"]["name"])
                ]
        return kt.HyperParameters.from_config(config)


def check_backbones(backbones: Sequence[str] | None, weights=None) -> list[str]:
    """The ``transfer`` family's backbone choices, checked (see ``CatDogHyperModel``)."""
    from catdog.models.backbones import get_backbone

    file_weights = weights not in (None, "imagenet")
    if backbones is None:
        backbones = ("mobilenet_v2",) if file_weights else SMALL_BACKBONES
    backbones = [backbones] if isinstance(backbones, str) else list(backbones)
    if not backbones:
        raise InvalidArgumentError("backbones must name at least one backbone, got none.")
    for name in backbones:
        get_backbone(name)
    if file_weights and len(backbones) > 1:
        raise InvalidArgumentError(
            f"A weights file fits one backbone, but backbones={backbones!r}; pass the one "
            "the file belongs to."
        )
    return backbones


def _blocks_that_fit(input_shape, kernel: int, pool: int, blocks: int) -> int:
    """How many of ``blocks`` conv blocks (valid conv + pooling) fit the input, at least 1."""
    size, fitting = min(input_shape[:2]), 0
    while fitting < blocks:
        size = (size - kernel + 1) // pool
        if size < 1:
            break
        fitting += 1
    return max(fitting, 1)


# name pattern -> (check, what is expected); applied to every value a hyperparameter can take
_RULES = {
    "filters_": (is_int, "a positive integer"),
    "conv_blocks": (lambda v: is_int(v) and v <= 4, "an integer from 1 to 4"),
    "kernel_size": (is_int, "a positive integer"),
    "pool_size": (is_int, "a positive integer"),
    "dense_units": (is_int, "a positive integer"),
    "dropout": (lambda v: is_number_in(v, 0, 1, high_included=False), "a number in [0, 1)"),
    "rotation": (
        lambda v: is_number_in(v, 0, 1, high_included=True),
        "a fraction of a full turn in [0, 1]",
    ),
    "zoom": (lambda v: is_number_in(v, 0, 1, high_included=True), "a number in [0, 1]"),
    "contrast": (lambda v: is_number_in(v, 0, 1, high_included=True), "a number in [0, 1]"),
    "learning_rate": (is_positive_number, "a positive number"),
    "family": (lambda v: v in FAMILIES, f"one of {FAMILIES}"),
    "pooling": (lambda v: v in ("max", "avg"), "'max' or 'avg'"),
    "backbone": (lambda v: v in BACKBONES, "a backbone name (catdog.list_models())"),
    "unfreeze_from": (
        lambda v: is_number_in(v, 0, 1, high_included=False),
        "a fraction of the base's depth in [0, 1)",
    ),
    "flip": (
        lambda v: v in ("horizontal", "vertical", "horizontal_and_vertical", "none"),
        "'horizontal', 'vertical', 'horizontal_and_vertical' or 'none'",
    ),
}


def _possible_values(hp_entry) -> list:
    config = hp_entry.get_config()
    if "values" in config:
        return list(config["values"])
    if "value" in config:
        return [config["value"]]
    return [v for v in (config.get("min_value"), config.get("max_value")) if v is not None]


def validate_hyperparameters(hyperparameters: kt.HyperParameters) -> None:
    """Raise ``InvalidArgumentError`` for a value catdog cannot build, before any trial runs.

    Examples:
        ```python
        hp = kt.HyperParameters(); hp.Fixed("filters_0", 0)
        validate_hyperparameters(hp)
        # InvalidArgumentError: hyperparameter 'filters_0' = 0: expected a positive integer.
        ```
    """
    for entry in hyperparameters.space:
        rule = next((r for prefix, r in _RULES.items() if entry.name.startswith(prefix)), None)
        if rule is None:
            continue
        check, expected = rule
        for value in _possible_values(entry):
            ok = False
            try:
                ok = bool(check(value))
            except TypeError:
                pass
            if not ok:
                raise InvalidArgumentError(
                    f"hyperparameter {entry.name!r} = {value!r}: expected {expected}."
                )


def _make_tuner(
    kind,
    hypermodel,
    *,
    objective,
    max_trials,
    max_epochs,
    directory,
    project_name,
    overwrite,
    seed,
    hyperparameters,
    tune_new_entries,
):
    common = dict(
        objective=objective,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
        max_consecutive_failed_trials=10,
    )
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    return kt.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)


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
        tuner: ``"random"``, ``"hyperband"`` or ``"bayesian"``.
        max_trials: the trials of a random or Bayesian search.
        epochs: epochs per trial (Hyperband: the most epochs of a trial, its ``max_epochs``).
        directory: the folder of the search's project folder.
        project_name: the search's folder inside ``directory``.
        overwrite: start the search afresh instead of resuming it.
        families: the model families to search (a subset of ``FAMILIES``).
        weights: the transfer family's base weights: ``"imagenet"``, ``None`` or a file.
        backbones: the transfer family's backbone choices (default
            [`SMALL_BACKBONES`][catdog.training.tuning.SMALL_BACKBONES]; MobileNetV2 alone with a
            weights file, which fits one backbone).
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
    if tuner not in TUNERS:
        raise InvalidArgumentError(f"tuner must be one of {TUNERS}, got {tuner!r}.")
    role = distributed_role()
    if overwrite and role not in (None, "chief"):
        overwrite = False  # a worker starting afresh would delete the chief's search
        logger.warning("%s: --overwrite is the chief's to apply; ignored on a worker.", role)
    check_int("max_trials", max_trials)
    check_int("epochs", epochs)
    check_positive_number("cluster_timeout", cluster_timeout)
    if hyperparameters is not None:
        validate_hyperparameters(hyperparameters)
        if "family" in hyperparameters:  # build (and download) only the families searched
            entry = next(e for e in hyperparameters.space if e.name == "family")
            families = [f for f in FAMILIES if f in _possible_values(entry)]
        if "backbone" in hyperparameters:  # likewise for the backbones
            entry = next(e for e in hyperparameters.space if e.name == "backbone")
            backbones = _possible_values(entry)
    hypermodel = hypermodel or CatDogHyperModel(
        input_shape=(*splits.image_size, 3),
        class_names=splits.class_names,
        families=families,
        weights=weights,
        backbones=backbones,
    )
    if hyperparameters is not None and isinstance(hypermodel, CatDogHyperModel):
        hyperparameters = hypermodel.condition(hyperparameters)
    if role not in (None, "chief"):  # KerasTuner's client would wait for it forever
        wait_for_oracle(role, cluster_timeout)
    elif role == "chief":
        logger.info(
            "chief: serving the oracle at %s:%s for the workers",
            os.environ["KERASTUNER_ORACLE_IP"],
            os.environ["KERASTUNER_ORACLE_PORT"],
        )
    search = _make_tuner(
        tuner,
        hypermodel,
        objective=objective,
        max_trials=max_trials,
        max_epochs=epochs,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        hyperparameters=hyperparameters,
        tune_new_entries=tune_new_entries,
    )
    fit_kwargs = {} if tuner == "hyperband" else {"epochs": epochs}
    search.search(  # the chief of a distributed search serves the oracle until it is done
        splits.train,
        validation_data=splits.validation,
        verbose=verbose,
        shuffle=False,
        callbacks=list(callbacks),
        **fit_kwargs,
    )
    if role in (None, "chief"):
        write_summary(search, Path(directory) / project_name, class_names=splits.class_names)
    return search


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
    from catdog.training.cluster import wait_for_peers

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
            from catdog.training.fit import attach_class_names

            attach_class_names(best, class_names)
        save_model(best, folder / "best_model.keras")
    return summary
