"""The catdog search space, a ``keras_tuner.HyperModel`` over the registered models (needs
KerasTuner: the ``tuner`` extra); [`tune`][catdog.training.tuning.tune] runs searches with it.

Which hyperparameters a model gets is asked of its
[`ModelSpec`][catdog.models.registry.ModelSpec], not of its name: a model of family ``"cnn"``
is searched over [`build_cnn_model`][catdog.models.cnn.build_cnn_model]'s arguments (so it
must take them), a pretrained one over its head and fine-tuning. Every value is checked by
the same functions the factories use.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Sequence

from catdog.errors import InvalidArgumentError, MissingExtraError

try:
    import keras_tuner as kt
except ImportError as error:  # pragma: no cover - exercised by a test in a subprocess
    raise MissingExtraError(
        "catdog.training.tuning needs KerasTuner, an optional dependency: pip install keras-tuner "
        'tensorboard (or install catdog with its extra: pip install ".[tuner]" in its source)'
    ) from error

from catdog._rules import (
    DEFAULT_INPUT_SHAPE,
    TUNING_BACKBONES,
    TUNING_FAMILIES,
    check_choice,
    check_fraction,
    check_int,
    check_positive_number,
)
from catdog.models.backbones import BACKBONES, get_backbone
from catdog.models.classifier import compile_model
from catdog.models.cnn import CNN_PRESETS, build_cnn_model
from catdog.models.layers import FLIP_MODES, check_augmentation
from catdog.models.registry import build_model, model_spec
from catdog.models.transfer import POOLINGS, check_unfreeze_fraction, unfreeze_base

FAMILIES = TUNING_FAMILIES
"""The models searched unless ``families=`` is given: the tutorial's three CNNs and
``transfer`` (a pretrained base whose ``backbone`` is searched too)."""
SMALL_BACKBONES = TUNING_BACKBONES
"""The ``backbone`` choices of the ``transfer`` model unless ``backbones=`` is given."""
MAX_CONV_BLOCKS = 4
"""The most conv blocks a CNN trial has."""
_NO_FLIP = "none"  # the flip hyperparameter's value for flip=None


def tuning_kind(name: str) -> str:
    """How the space searches the registered model ``name``, from its spec: ``"cnn"`` (a model
    of family ``"cnn"``) or ``"pretrained"`` (one with a pretrained base); else an error.

    Examples:
        >>> tuning_kind("baseline"), tuning_kind("transfer")
        ('cnn', 'pretrained')
    """
    spec = model_spec(name)
    if spec.family == "cnn":
        return "cnn"
    if spec.pretrained:
        return "pretrained"
    raise InvalidArgumentError(
        f"The model {name!r} (family {spec.family!r}) cannot be tuned: the search space covers "
        "models of family 'cnn' (which take build_cnn_model's arguments) and pretrained ones."
    )


def check_families(families: Sequence[str]) -> list[str]:
    """Return ``families`` as a list of tunable registered models, or raise a clear error."""
    families = [families] if isinstance(families, str) else list(families)
    if not families:
        raise InvalidArgumentError("families must name at least one model to search, got none.")
    for name in families:
        try:
            tuning_kind(name)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"families: {error}") from None
    return families


def check_backbones(backbones: Sequence[str] | None, weights=None) -> list[str]:
    """The ``transfer`` model's backbone choices, checked (see ``CatDogHyperModel``)."""
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


def _augments(name: str) -> bool:
    """Whether the model augments by default (the tutorial's baseline does not)."""
    return CNN_PRESETS.get(name, {}).get("flip", True) is not None


@functools.cache
def family_defaults(name: str) -> dict:
    """The arguments the registered model ``name`` is built with by default: its factory's
    defaults under its preset's settings (a CNN's are ``build_cnn_model``'s under
    ``CNN_PRESETS``). A hyperparameter that is not searched takes its value from here, so a
    trial of ``baseline`` with ``tune_new_entries=False`` is the tutorial's model 1.

    Examples:
        >>> family_defaults("baseline")["dropout"], len(family_defaults("augmented")["filters"])
        (0.3, 1)
    """
    spec = model_spec(name)
    factory = build_cnn_model if spec.family == "cnn" else spec.factory
    parameters = inspect.signature(factory).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **CNN_PRESETS.get(name, {})}


def _single(value):
    """A per-block setting's value for the whole model (its first, if a sequence)."""
    return value[0] if isinstance(value, (list, tuple)) else value


def _blocks_that_fit(input_shape, kernel: int, pool: int, blocks: int) -> int:
    """How many of ``blocks`` conv blocks (valid conv + pooling) fit the input, at least 1."""
    size, fitting = min(input_shape[:2]), 0
    while fitting < blocks:
        size = (size - kernel + 1) // pool
        if size < 1:
            break
        fitting += 1
    return max(fitting, 1)


class CatDogHyperModel(kt.HyperModel):
    """The catdog search space, as a ``keras_tuner.HyperModel`` returning compiled models.

    Hyperparameters (conditional ones only exist where they apply):

    - ``family``: which registered model (``families`` restricts it: models of family
      ``"cnn"`` and pretrained ones, see [`tuning_kind`][catdog.training.search_space.tuning_kind]);
    - CNNs: ``conv_blocks`` 1-4, ``filters_{i}`` per block, ``kernel_size``
      (3, 5, 7, 9), ``pool_size`` (2, 3, 4); blocks that would shrink the feature map of a
      small input to nothing are left out of that trial's model;
    - pretrained models: ``backbone`` (``transfer`` only, as the others are one backbone;
      ``backbones`` restricts it; default
      [`SMALL_BACKBONES`][catdog.training.search_space.SMALL_BACKBONES], or MobileNetV2 alone
      with a weights file), ``pooling`` (max/avg), ``fine_tune_base`` and then
      ``unfreeze_from`` (a fraction of the base's depth, 0.5-0.9);
    - head: ``dense_units``, ``dropout``;
    - models that augment (all but ``baseline``): ``augment``, then ``flip``, ``rotation``,
      ``zoom``, ``contrast``;
    - ``learning_rate`` (log scale).

    A hyperparameter a trial does not search takes the trial's model's own default
    ([`family_defaults`][catdog.training.search_space.family_defaults]): the tutorial's
    architecture for its four models.

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
        self.families = check_families(families)
        self._kinds = {f: tuning_kind(f) for f in self.families}
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.class_names = list(class_names) if class_names else None
        if self.class_names:
            self.num_classes = len(self.class_names)
        self.weights = weights
        self.backbones = check_backbones(backbones, weights)

    def _with(self, *, kind: str | None = None, test: Callable = bool) -> list[str]:
        return [f for f in self.families if kind in (None, self._kinds[f]) and test(f)]

    def conditions(self, name: str) -> list[tuple[str, list]]:
        """The ``(parent, values)`` conditions under which hyperparameter ``name`` exists."""
        cnn, pretrained = self._with(kind="cnn"), self._with(kind="pretrained")
        augmenting = self._with(test=_augments)
        if name in ("conv_blocks", "kernel_size", "pool_size"):
            return [("family", cnn)]
        if name.startswith("filters_") and name[8:].isdigit():
            blocks = list(range(int(name[8:]) + 1, MAX_CONV_BLOCKS + 1))
            return [("family", cnn), ("conv_blocks", blocks)]
        if name == "backbone":
            return [("family", self._with(kind="pretrained", test=_searches_backbone))]
        if name in ("pooling", "fine_tune_base"):
            return [("family", pretrained)]
        if name == "unfreeze_from":
            return [("family", pretrained), ("fine_tune_base", [True])]
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

    def _get(self, hp: kt.HyperParameters, kind: str, name: str, *args, **kwargs):
        """``hp.<kind>(name, ...)`` inside the conditional scopes of ``name``."""
        with self.scope(hp, name):
            return getattr(hp, kind)(name, *args, **kwargs)

    def build(self, hp: kt.HyperParameters):
        """A compiled model of the trial's ``family``, built with the trial's values."""
        get = functools.partial(self._get, hp)
        family = hp.Choice("family", self.families)
        defaults = family_defaults(family)
        unfreeze_from = None
        if self._kinds[family] == "cnn":
            kwargs = self._cnn_arguments(get, defaults)
        else:
            kwargs, unfreeze_from = self._pretrained_arguments(get, family, defaults)
        kwargs["dense_units"] = get(
            "Int", "dense_units", 16, 256, sampling="log", default=defaults["dense_units"]
        )
        kwargs["dropout"] = get("Float", "dropout", 0.0, 0.5, step=0.1, default=defaults["dropout"])
        if _augments(family):
            kwargs.update(self._augmentation_arguments(get, defaults))
        learning_rate = get("Float", "learning_rate", 1e-5, 1e-2, sampling="log", default=1e-3)
        model = build_model(
            family,
            input_shape=self.input_shape,
            num_classes=None if self.class_names else self.num_classes,
            class_names=self.class_names,
            **kwargs,
        )
        if unfreeze_from is not None:
            unfreeze_base(model, unfreeze_from)
        return compile_model(model, learning_rate)

    def _cnn_arguments(self, get: Callable, defaults: dict) -> dict:
        """The conv blocks of a CNN trial, those that fit the input."""
        preset = list(defaults["filters"])
        blocks = get("Int", "conv_blocks", 1, MAX_CONV_BLOCKS, default=len(preset))
        filters = [
            get(
                "Int",
                f"filters_{i}",
                8,
                128,
                step=8,
                default=preset[i] if i < len(preset) else 16 * 2 ** min(i, 2),
            )
            for i in range(blocks)
        ]
        kernel = get(
            "Choice", "kernel_size", [3, 5, 7, 9], default=_single(defaults["kernel_size"])
        )
        pool = get("Choice", "pool_size", [2, 3, 4], default=_single(defaults["pool_size"]))
        fitting = _blocks_that_fit(self.input_shape, kernel, pool, blocks)
        return {"filters": filters[:fitting], "kernel_size": kernel, "pool_size": pool}

    def _pretrained_arguments(
        self, get: Callable, family: str, defaults: dict
    ) -> tuple[dict, float | None]:
        """The base of a pretrained trial, and where fine-tuning unfreezes it (or ``None``)."""
        kwargs: dict = {}
        if _searches_backbone(family):
            kwargs["backbone"] = get("Choice", "backbone", self.backbones)
        kwargs["pooling"] = get("Choice", "pooling", list(POOLINGS), default=defaults["pooling"])
        kwargs["weights"] = self.weights
        unfreeze_from = None
        if get("Boolean", "fine_tune_base", default=False):
            unfreeze_from = get("Float", "unfreeze_from", 0.5, 0.9, step=0.1, default=0.7)
        return kwargs, unfreeze_from

    def _augmentation_arguments(self, get: Callable, defaults: dict) -> dict:
        """The augmentation of a trial of a model that augments (none if ``augment`` is off)."""
        if not get("Boolean", "augment", default=True):
            return {"flip": None, "rotation": None}
        flip = get("Choice", "flip", [*FLIP_MODES, _NO_FLIP], default=defaults["flip"] or _NO_FLIP)
        amounts = {
            name: get("Float", name, 0.0, 0.3, step=step, default=defaults[name] or 0.0)
            for name, step in (("rotation", 0.05), ("zoom", 0.1), ("contrast", 0.1))
        }
        return {"flip": None if flip == _NO_FLIP else flip, **amounts}

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


def _searches_backbone(name: str) -> bool:
    """A pretrained model whose backbone is a choice (``transfer``), not one registered under
    its backbone's own name (``efficientnet_v2_b0``)."""
    return name not in BACKBONES


def _check_conv_blocks(name: str, value) -> None:
    if check_int(name, value) > MAX_CONV_BLOCKS:
        raise InvalidArgumentError(f"{name} must be at most {MAX_CONV_BLOCKS}, got {value!r}.")


# name prefix -> the factories' check of a value, check(name, value): raises if it is bad
_CHECKS: dict[str, Callable] = {
    "filters_": check_int,
    "conv_blocks": _check_conv_blocks,
    "kernel_size": check_int,
    "pool_size": check_int,
    "dense_units": check_int,
    "dropout": check_fraction,
    "rotation": lambda name, v: check_augmentation(rotation=v),
    "zoom": lambda name, v: check_augmentation(zoom=v),
    "contrast": lambda name, v: check_augmentation(contrast=v),
    "flip": lambda name, v: check_augmentation(None if v == _NO_FLIP else v),
    "learning_rate": check_positive_number,
    "family": lambda name, v: tuning_kind(v),
    "pooling": lambda name, v: check_choice(name, v, POOLINGS),
    "backbone": lambda name, v: get_backbone(v),
    "unfreeze_from": lambda name, v: check_unfreeze_fraction(v),
}


def possible_values(hp_entry) -> list:
    """Every value a ``HyperParameters`` entry can take: its choices, or its range's ends."""
    config = hp_entry.get_config()
    if "values" in config:
        return list(config["values"])
    if "value" in config:
        return [config["value"]]
    return [v for v in (config.get("min_value"), config.get("max_value")) if v is not None]


def validate_hyperparameters(hyperparameters: kt.HyperParameters) -> None:
    """Raise ``InvalidArgumentError`` for a value catdog cannot build, before any trial runs.

    Each value goes through the check the model factories apply to that argument.

    Examples:
        ```python
        hp = kt.HyperParameters(); hp.Fixed("filters_0", 0)
        validate_hyperparameters(hp)
        # InvalidArgumentError: hyperparameter 'filters_0' = 0: filters_0 must be a positive
        # integer, got 0.
        ```
    """
    for entry in hyperparameters.space:
        check = next((c for prefix, c in _CHECKS.items() if entry.name.startswith(prefix)), None)
        for value in possible_values(entry) if check else ():
            try:
                check(entry.name, value)
            except (InvalidArgumentError, TypeError) as error:
                raise InvalidArgumentError(
                    f"hyperparameter {entry.name!r} = {value!r}: {error}"
                ) from None
