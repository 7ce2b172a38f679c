"""The catdog model zoo: the tutorial's four architectures as configurable factories.

"The tutorial", here and in all of catdog's documentation, is the "Image Classification with
TensorFlow" cats-vs-dogs tutorial catdog started from: the ``cats_and_dogs_filtered`` data at
160x160 and four models, A (a small CNN), B (with RandomFlip + RandomRotation), C (with
MobileNetV2 input scaling) and D (a frozen MobileNetV2 base under a small head).

Every model takes raw RGB pixels in 0..255 (preprocessing and augmentation are layers inside
the model) and ends in ``Dense(num_classes)`` with a softmax (default) or no activation
(logits). Register a new architecture with [`register_model`][catdog.models.register_model]; list
and build by name with [`list_models`][catdog.models.list_models] and
[`build_model`][catdog.models.build_model].
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
from keras import layers

from catdog._rules import (
    DEFAULT_IMAGE_SIDE,
    DEFAULT_INPUT_SHAPE,
    PRECISIONS,
    check_fraction,
    check_int,
    check_positive_number,
    check_printable_class_names,
    check_sides,
    did_you_mean,
)
from catdog.backbones import (
    BACKBONES,
    build_base,
    get_backbone,
    preprocessed_range,
    preprocessing_layers,
)
from catdog.errors import InvalidArgumentError
from catdog.layers import InferenceMode, augmentation_layers, mobilenet_v2_preprocessing

_REGISTRY: dict = {}  # name -> ModelSpec


# ----------------------------------------------------------------------------- the model class
# Layers that change images only in training and pass them through unchanged at inference
# (RandomCrop is left out: at inference it crops).
_AUGMENTATION_TYPES = ("AugMix", "CutMix", "MixUp", "RandAugment")


def is_augmentation_layer(layer: keras.layers.Layer) -> bool:
    """True for a Keras layer that augments in training and is the identity at inference."""
    name = type(layer).__name__
    return (name.startswith("Random") and name != "RandomCrop") or name in _AUGMENTATION_TYPES


@keras.saving.register_keras_serializable(package="catdog")
class ImageClassifier(keras.Sequential):
    """A ``keras.Sequential`` image classifier that knows its class names and augmentation.

    Every model catdog builds is one. ``class_names`` (one per output, or ``None``) and
    ``augmentation`` (the names of the layers that only act in training) are part of its
    ``get_config``, so a saved ``.keras`` file describes itself: loaded anywhere with
    [`catdog.load_model`][catdog.saving.load_model] (or ``keras.saving.load_model`` after
    ``import catdog.models``, which registers this class), it still names its classes, and
    [`inference_model`][catdog.inference.inference_model] drops its augmentation by name.
    ``keras.models.clone_model`` returns a plain ``keras.Sequential``: set ``class_names`` on
    an ``ImageClassifier`` again if you clone one.

    Examples:
        >>> model = build_baseline_model(input_shape=(32, 32, 3), class_names=["a", "b", "c"])
        >>> model.class_names, model.output_shape
        (['a', 'b', 'c'], (None, 3))
    """

    def __init__(self, layers=None, trainable=True, name=None, *, class_names=None,
                 augmentation=None):  # fmt: skip
        super().__init__(layers=layers, trainable=trainable, name=name)
        self.class_names = class_names
        self.augmentation = augmentation

    @property
    def class_names(self) -> list[str] | None:
        """The class of each output, in order, or ``None`` when unknown."""
        return list(self._class_names) if self._class_names is not None else None

    @class_names.setter
    def class_names(self, names) -> None:
        self._class_names = None if names is None else tuple(check_class_names(names))

    @property
    def augmentation(self) -> list[str]:
        """The names of the layers that augment images in training only.

        Unless given, the layers that
        [`is_augmentation_layer`][catdog.models.is_augmentation_layer] recognises.
        """
        if self._augmentation is None:
            return [layer.name for layer in self.layers if is_augmentation_layer(layer)]
        return list(self._augmentation)

    @augmentation.setter
    def augmentation(self, names) -> None:
        self._augmentation = None if names is None else tuple(str(n) for n in names)

    def get_config(self) -> dict:
        return {**super().get_config(), "class_names": self.class_names,
                "augmentation": self.augmentation}  # fmt: skip

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        class_names = config.pop("class_names", None)
        augmentation = config.pop("augmentation", [])
        model = super().from_config(config, custom_objects=custom_objects)
        model.class_names, model.augmentation = class_names, augmentation
        return model


def check_class_names(names) -> list[str]:
    """Return ``names`` as a list if they are at least two distinct, non-empty strings."""
    values = list(names) if isinstance(names, (list, tuple)) else None
    if (
        values is None
        or len(values) < 2
        or not all(isinstance(n, str) and n for n in values)
        or len(set(values)) != len(values)
    ):
        raise InvalidArgumentError(
            f"class_names must be at least two distinct, non-empty strings, got {names!r}."
        )
    check_printable_class_names(values)
    return values


def class_names_of(model: keras.Model) -> list[str] | None:
    """The class names a model carries (any catdog model, once built or trained), or ``None``.

    Examples:
        >>> class_names_of(build_baseline_model(input_shape=(32, 32, 3), class_names=["x", "y"]))
        ['x', 'y']
    """
    return getattr(model, "class_names", None) if isinstance(model, ImageClassifier) else None


def _classes(num_classes: int | None, class_names) -> tuple[int, list[str] | None]:
    """``(number of outputs, class names or None)`` from a factory's two arguments."""
    if class_names is None:
        return check_int("num_classes", 2 if num_classes is None else num_classes, minimum=2), None
    names = check_class_names(class_names)
    if num_classes is not None and num_classes != len(names):
        raise InvalidArgumentError(
            f"num_classes={num_classes!r} but {len(names)} class_names were given; pass one "
            "of them (num_classes follows class_names)."
        )
    return len(names), names


def _classifier(layer_list: list, *, name: str, class_names) -> ImageClassifier:
    augmentation = [layer.name for layer in layer_list if is_augmentation_layer(layer)]
    return ImageClassifier(layer_list, name=name, class_names=class_names,
                           augmentation=augmentation)  # fmt: skip


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its factory and what is known about it (timm's ``default_cfgs``).

    Callers ask the spec, never the name: whether a model has a pretrained base (it can cache
    frozen features and fine-tune), its default input size, its size and its published
    accuracy.

    Attributes:
        name: the registered name.
        factory: the function that builds it (keyword arguments as documented there).
        family: ``"cnn"`` for the tutorial's CNNs, the ``keras.applications`` module of a
            pretrained backbone (``"efficientnet_v2"``), or ``"custom"``.
        input_size: the default input side (``build_model`` and ``catdog train`` use it when
            no size is given), or ``None`` to leave it to the factory.
        pretrained: whether it has a pretrained base (built with ``weights=``).
        params: the parameters of its two-class model at the defaults, if known.
        top1: the ImageNet top-1 accuracy (%) published for its backbone, if any.
        description: one line for model tables.
    """

    name: str
    factory: Callable[..., keras.Model]
    family: str = "custom"
    input_size: int | None = None
    pretrained: bool = False
    params: int | None = None
    top1: float | None = None
    description: str = ""


def register_model(
    name: str | None = None,
    *,
    family: str = "custom",
    input_size: int | None = None,
    pretrained: bool = False,
    params: int | None = None,
    top1: float | None = None,
    description: str | None = None,
) -> Callable:
    """Decorator that adds a model factory to the registry under ``name``, with its metadata.

    The name defaults to the factory's (``build_tiny_model`` -> ``"tiny"``), the description
    to its docstring's first line; the other arguments are the
    [`ModelSpec`][catdog.models.ModelSpec] fields.

    Examples:
        ```python
        @register_model("tiny", input_size=32)
        def build_tiny_model(input_shape=(32, 32, 3), num_classes=2, **kwargs):
            ...
        ```
    """
    if input_size is not None:
        check_int("input_size", input_size)

    def decorator(factory: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or factory.__name__.removeprefix("build_").removesuffix("_model")
        doc = (factory.__doc__ or "").strip()
        _REGISTRY[key] = ModelSpec(
            key, factory, family, input_size, bool(pretrained), params, top1,
            description if description is not None else (doc.splitlines() or [""])[0],
        )  # fmt: skip
        return factory

    return decorator


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``, or an error naming the close matches.

    Examples:
        >>> spec = model_spec("efficientnet_v2_b0")
        >>> spec.family, spec.input_size, spec.pretrained, spec.top1
        ('efficientnet_v2', 224, True, 78.7)
    """
    if name not in _REGISTRY:
        raise InvalidArgumentError(
            f"Unknown model {name!r}.{did_you_mean(name, _REGISTRY)} catdog.list_models() "
            "names them all; `catdog models` prints them with their sizes and accuracies."
        )
    return _REGISTRY[name]


def list_models(pattern: str = "*", *, pretrained: bool | None = None) -> list[str]:
    """The sorted names of registered models that match a shell-style ``pattern``.

    ``pretrained=True`` (or ``False``) keeps only models with (without) a pretrained base.

    Examples:
        >>> list_models("*ed")
        ['augmented', 'preprocessed']
        >>> list_models("efficientnet_v2*")[:3]
        ['efficientnet_v2_b0', 'efficientnet_v2_b1', 'efficientnet_v2_b2']
        >>> len(list_models(pretrained=True))
        41
    """
    return sorted(
        n
        for n, spec in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern) and pretrained in (None, spec.pretrained)
    )


@contextlib.contextmanager
def precision_scope(precision: str | None):
    """Build layers under a Keras dtype policy, restoring the previous one afterwards.

    ``"mixed_bfloat16"``/``"mixed_float16"`` compute in 16 bits with float32 weights; catdog's
    output layer stays float32. Keras adds loss scaling for ``mixed_float16`` at compile time.

    Examples:
        >>> with precision_scope("mixed_bfloat16"):
        ...     model = build_baseline_model()
    """
    if precision is None:
        yield
        return
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(name: str, *, precision: str | None = None, **kwargs) -> keras.Model:
    """Build the registered model ``name`` with the factory's keyword arguments.

    Without ``input_shape``, the model is built at its spec's default input size
    ([`ModelSpec.input_size`][catdog.models.ModelSpec]). ``precision`` (``"float32"``,
    ``"mixed_bfloat16"``, ``"mixed_float16"``) sets the dtype policy of the model's layers;
    see [`precision_scope`][catdog.models.precision_scope].

    Examples:
        >>> build_model("baseline", input_shape=(96, 96, 3), num_classes=3).output_shape
        (None, 3)
        >>> build_model("efficientnet_v2_b0", weights=None, num_classes=5).input_shape
        (None, 224, 224, 3)
    """
    spec = model_spec(name)
    if spec.input_size is not None:
        kwargs.setdefault("input_shape", (spec.input_size, spec.input_size, 3))
    with precision_scope(precision):
        return spec.factory(**kwargs)


def factory_parameters(name: str) -> set[str]:
    """The keyword arguments that the factory of the registered model ``name`` names."""
    import inspect

    return set(inspect.signature(model_spec(name).factory).parameters)


def describe_model(name: str) -> str:
    """A one-line description of the registered model ``name``.

    Examples:
        >>> describe_model("baseline")
        "The tutorial's model 1: two Conv2D+MaxPooling blocks and a dense head, no augmentation."
    """
    return model_spec(name).description


def check_model_name(name: str) -> str:
    """Return ``name`` if it is registered, else raise an error naming the close matches."""
    return model_spec(name).name


# ----------------------------------------------------------------------------- validation
def _check_input_shape(input_shape) -> tuple[int, int, int]:
    return check_sides("input_shape", input_shape, 3, channels=3)


def _check_head(dropout, dense_units, classifier_activation) -> None:
    check_fraction("dropout", dropout)
    check_int("dense_units", dense_units)
    if classifier_activation not in ("softmax", None):
        raise InvalidArgumentError(
            "classifier_activation must be 'softmax' (probabilities) or None (logits), got "
            f"{classifier_activation!r}. A sigmoid head under a sparse categorical loss, as "
            "in the original tutorial, does not give probabilities that sum to 1."
        )


def _per_block(name: str, value, blocks: int) -> list[int]:
    values = list(value) if isinstance(value, (tuple, list)) else [value] * blocks
    if len(values) != blocks:
        raise InvalidArgumentError(
            f"{name} must be one integer or one per conv block ({blocks}), got {value!r}."
        )
    return [check_int(name, v) for v in values]


def _conv_plan(input_shape, filters, kernel_size, pool_size):
    if isinstance(filters, int) or not isinstance(filters, (tuple, list)) or not filters:
        raise InvalidArgumentError(
            f"filters must be a non-empty sequence of positive integers, got {filters!r}."
        )
    filters = [check_int("filters", f) for f in filters]
    kernels = _per_block("kernel_size", kernel_size, len(filters))
    pools = _per_block("pool_size", pool_size, len(filters))
    height, width = input_shape[:2]
    for kernel, pool in zip(kernels, pools, strict=True):
        height, width = (height - kernel + 1) // pool, (width - kernel + 1) // pool
        if height < 1 or width < 1:
            raise InvalidArgumentError(
                f"input_shape {tuple(input_shape)} is too small for conv kernels {kernels} and "
                f"pool sizes {pools}: the feature map shrinks to nothing. Use a larger input "
                "or fewer/smaller blocks."
            )
    return list(zip(filters, kernels, pools, strict=True))


# ----------------------------------------------------------------------------- builders
def _head(dropout_before: float, dense_units: int, num_classes: int, activation) -> list:
    head = [layers.Dropout(dropout_before, name="head_dropout")] if dropout_before else []
    return head + [
        layers.Flatten(name="flatten"),
        layers.Dense(dense_units, activation="relu", name="dense"),
        # float32 even under a mixed precision policy: stable softmax and loss
        layers.Dense(num_classes, activation=activation, name="predictions", dtype="float32"),
    ]


def _cnn(
    *,
    name: str,
    input_shape,
    num_classes: int | None,
    class_names,
    input_layers: list,
    filters,
    kernel_size,
    pool_size,
    dropout: float,
    dense_units: int,
    classifier_activation,
) -> keras.Sequential:
    """Conv blocks; ``dropout`` sits after the last conv, before its pooling, as in the tutorial."""
    input_shape = _check_input_shape(input_shape)
    num_classes, class_names = _classes(num_classes, class_names)
    _check_head(dropout, dense_units, classifier_activation)
    plan = _conv_plan(input_shape, filters, kernel_size, pool_size)
    body: list = []
    for i, (n_filters, kernel, pool) in enumerate(plan, start=1):
        body.append(layers.Conv2D(n_filters, kernel, activation="relu", name=f"conv_{i}"))
        if dropout and i == len(plan):
            body.append(layers.Dropout(dropout, name="conv_dropout"))
        body.append(layers.MaxPooling2D(pool, name=f"pool_{i}"))
    return _classifier(
        [
            keras.Input(shape=input_shape, name="image"),
            *input_layers,
            *body,
            *_head(0, dense_units, num_classes, classifier_activation),
        ],
        name=name,
        class_names=class_names,
    )


CNN_PRESETS: dict[str, dict] = {
    "baseline": {"filters": (16, 32), "dropout": 0.3, "flip": None, "rotation": None},
    "augmented": {"filters": (16,), "dropout": 0.0},
    "preprocessed": {"filters": (16, 32), "dropout": 0.0, "scale_inputs": True},
}
"""The tutorial's three CNNs, as settings of [`build_cnn_model`][catdog.models.build_cnn_model]."""


def build_cnn_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int | None = None,
    *,
    class_names: Sequence[str] | None = None,
    filters: Sequence[int] = (16, 32),
    kernel_size: int | Sequence[int] = 3,
    pool_size: int | Sequence[int] = 2,
    dropout: float = 0.0,
    dense_units: int = 64,
    scale_inputs: bool = False,
    flip: str | None = "horizontal_and_vertical",
    rotation: float | None = 0.2,
    zoom: float | None = None,
    contrast: float | None = None,
    augmentation_seed: int | None = None,
    classifier_activation: str | None = "softmax",
    name: str = "cnn",
) -> keras.Sequential:
    """A small CNN: optional input scaling and augmentation, conv blocks, a dense head.

    The tutorial's models 1-3 are presets of it ([`CNN_PRESETS`][catdog.models.CNN_PRESETS]):
    [`build_baseline_model`][catdog.models.build_baseline_model],
    [`build_augmented_model`][catdog.models.build_augmented_model] and
    [`build_preprocessed_model`][catdog.models.build_preprocessed_model].

    Args:
        input_shape: ``(height, width, 3)`` of the input images, positive integers; the model
            takes raw RGB pixels in 0..255.
        num_classes: the number of classes (outputs), at least 2. Defaults to 2, or to the
            number of ``class_names``.
        class_names: the name of each class, in output order; the model carries them (see
            [`ImageClassifier`][catdog.models.ImageClassifier]).
        filters: the filters of each ``Conv2D`` block: one block per entry, a non-empty
            sequence of positive integers.
        kernel_size: the side of the conv kernels (no padding): one integer for every block,
            or one per block.
        pool_size: the side of the ``MaxPooling2D`` windows: one integer for every block, or
            one per block. Kernels and pools must leave a feature map of at least 1x1.
        dropout: the rate, in ``[0, 1)``, of a ``Dropout`` layer after the last conv, before
            its pooling (as in the tutorial); ``0`` leaves it out.
        dense_units: the units of the head's hidden ``Dense`` layer (ReLU), a positive integer.
        scale_inputs: put MobileNetV2's input scaling (pixels to -1..1) first, as model 3 does.
        flip: the ``RandomFlip`` mode: ``"horizontal"``, ``"vertical"`` or
            ``"horizontal_and_vertical"``; ``None`` leaves the flip out.
        rotation: the ``RandomRotation`` factor, a fraction of a full turn in ``[0, 1]``
            (0.2 = up to +-72 degrees); ``None`` or ``0`` leaves the layer out.
        zoom: the ``RandomZoom`` factor in ``[0, 1]`` (0.1 = zoom in or out by up to 10%);
            ``None`` or ``0`` leaves the layer out.
        contrast: the ``RandomContrast`` factor in ``[0, 1]`` (0.2 = contrast scaled by 0.8 to
            1.2, clipped to the pixel range the layer sees); ``None`` or ``0`` leaves it out.
        augmentation_seed: the seed of the augmentation layers; ``None`` for unseeded ones.
        classifier_activation: ``"softmax"`` (the output is probabilities) or ``None``
            (logits).
        name: the model's name.

    Examples:
        >>> build_cnn_model(input_shape=(64, 64, 3), filters=(8, 16), flip=None).output_shape
        (None, 2)
    """
    input_layers = [mobilenet_v2_preprocessing()] if scale_inputs else []
    input_layers += augmentation_layers(
        flip,
        rotation,
        zoom,
        contrast,
        augmentation_seed,
        value_range=(-1, 1) if scale_inputs else (0, 255),
    )
    return _cnn(
        name=name,
        input_shape=input_shape,
        num_classes=num_classes,
        class_names=class_names,
        input_layers=input_layers,
        filters=filters,
        kernel_size=kernel_size,
        pool_size=pool_size,
        dropout=dropout,
        dense_units=dense_units,
        classifier_activation=classifier_activation,
    )


def _preset(name: str, input_shape, num_classes, kwargs: dict) -> keras.Sequential:
    return build_cnn_model(
        input_shape, num_classes, **{**CNN_PRESETS[name], "name": name, **kwargs}
    )


@register_model("baseline", family="cnn", input_size=DEFAULT_IMAGE_SIDE, params=2_962_594)
def build_baseline_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 1: two Conv2D+MaxPooling blocks and a dense head, no augmentation.

    [`build_cnn_model`][catdog.models.build_cnn_model] with ``filters=(16, 32)``,
    ``dropout=0.3`` and no augmentation; other keyword arguments are that function's.
    Defaults give the tutorial's layers and 2,962,594 parameters at 160x160x3.

    Examples:
        >>> model = build_baseline_model(input_shape=(96, 96, 3), num_classes=3)
        >>> model.output_shape
        (None, 3)
    """
    return _preset("baseline", input_shape, num_classes, kwargs)


@register_model("augmented", family="cnn", input_size=DEFAULT_IMAGE_SIDE, params=6_391_426)
def build_augmented_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 2: RandomFlip + RandomRotation(0.2), one Conv2D block, dense head.

    [`build_cnn_model`][catdog.models.build_cnn_model] with ``filters=(16,)``; other keyword
    arguments are that function's. Defaults give the tutorial's layers and 6,391,426
    parameters at 160x160x3.

    Examples:
        >>> model = build_augmented_model(rotation=0.1, zoom=0.1)
    """
    return _preset("augmented", input_shape, num_classes, kwargs)


@register_model("preprocessed", family="cnn", input_size=DEFAULT_IMAGE_SIDE, params=2_962_594)
def build_preprocessed_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 3: pixels scaled to -1..1, augmentation, two conv blocks, dense head.

    [`build_cnn_model`][catdog.models.build_cnn_model] with ``filters=(16, 32)`` and
    ``scale_inputs=True``; other keyword arguments are that function's. Defaults give the
    tutorial's layers and 2,962,594 parameters at 160x160x3.

    Examples:
        >>> model = build_preprocessed_model(filters=(32, 64), kernel_size=(5, 3))
    """
    return _preset("preprocessed", input_shape, num_classes, kwargs)


@register_model(
    "transfer", family="mobilenet_v2", input_size=DEFAULT_IMAGE_SIDE, pretrained=True,
    params=BACKBONES["mobilenet_v2"].params, top1=BACKBONES["mobilenet_v2"].top1,
)  # fmt: skip
def build_transfer_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int | None = None,
    *,
    backbone: str = "mobilenet_v2",
    class_names: Sequence[str] | None = None,
    weights: str | os.PathLike | None = "imagenet",
    base_trainable: bool = False,
    pooling: str = "max",
    dropout: float = 0.3,
    dense_units: int = 64,
    flip: str | None = "horizontal_and_vertical",
    rotation: float | None = 0.2,
    zoom: float | None = None,
    contrast: float | None = None,
    augmentation_seed: int | None = None,
    classifier_activation: str | None = "softmax",
    name: str = "transfer",
) -> keras.Sequential:
    """The tutorial's model 4: a pretrained ImageNet base (MobileNetV2) under a small head.

    Any ``keras.applications`` backbone can be the base (``backbone=``, see
    [`BACKBONES`][catdog.backbones.BACKBONES]); its own preprocessing is a layer inside the
    model, so the model takes raw 0..255 pixels. The base always runs in inference mode, so
    its BatchNorm statistics stay fixed during fine-tuning. The defaults are the tutorial's
    model: 2,340,098 parameters, 82,114 of them trainable, at 160x160x3.

    Args:
        input_shape: ``(height, width, 3)`` of the input images, positive integers at least
            the backbone's minimum side (32 for most, 71 for Xception, 75 for the Inception
            models); the model takes raw RGB pixels in 0..255.
        num_classes: the number of classes (outputs), at least 2. Defaults to 2, or to the
            number of ``class_names``.
        backbone: the pretrained base, a ``keras.applications`` class name in snake case:
            ``"mobilenet_v2"`` (the tutorial's), ``"efficientnet_v2_b0"``, ``"resnet50"``...
        class_names: the name of each class, in output order; the model carries them (see
            [`ImageClassifier`][catdog.models.ImageClassifier]).
        weights: the base's weights: ``"imagenet"`` (downloaded by Keras), ``None`` (random)
            or the path of an existing no-top weights file of that backbone.
        base_trainable: whether the base's weights are trained too (fine-tuning); by default
            the base is frozen and only the head is trained.
        pooling: how the base's feature map is pooled: ``"max"`` (global max, the tutorial's) or
            ``"avg"`` (global average).
        dropout: the rate, in ``[0, 1)``, of a ``Dropout`` layer after the pooling; ``0``
            leaves it out.
        dense_units: the units of the head's hidden ``Dense`` layer (ReLU), a positive integer.
        flip: the ``RandomFlip`` mode: ``"horizontal"``, ``"vertical"`` or
            ``"horizontal_and_vertical"``; ``None`` leaves the flip out.
        rotation: the ``RandomRotation`` factor, a fraction of a full turn in ``[0, 1]``
            (0.2 = up to +-72 degrees); ``None`` or ``0`` leaves the layer out.
        zoom: the ``RandomZoom`` factor in ``[0, 1]`` (0.1 = zoom in or out by up to 10%);
            ``None`` or ``0`` leaves the layer out.
        contrast: the ``RandomContrast`` factor in ``[0, 1]`` (0.2 = contrast scaled by 0.8 to
            1.2, clipped to the range of the preprocessed pixels); ``None`` or ``0`` leaves
            the layer out.
        augmentation_seed: the seed of the augmentation layers; ``None`` for unseeded ones.
        classifier_activation: ``"softmax"`` (the output is probabilities) or ``None``
            (logits).
        name: the model's name.

    Examples:
        >>> build_transfer_model(weights=None).count_params()
        2340098
        >>> model = build_transfer_model((96, 96, 3), backbone="resnet50", weights=None)
        >>> [layer.name for layer in model.layers][:2]
        ['resnet_preprocessing', 'random_flip']
    """
    input_shape = _check_input_shape(input_shape)
    spec = get_backbone(backbone)
    num_classes, class_names = _classes(num_classes, class_names)
    _check_head(dropout, dense_units, classifier_activation)
    if pooling not in ("max", "avg"):
        raise InvalidArgumentError(f"pooling must be 'max' or 'avg', got {pooling!r}.")
    base = build_base(spec, input_shape, weights)
    base.trainable = bool(base_trainable)
    pool = (
        layers.GlobalMaxPooling2D(name="global_pool")
        if pooling == "max"
        else layers.GlobalAveragePooling2D(name="global_pool")
    )
    return _classifier(
        [
            keras.Input(shape=input_shape, name="image"),
            *preprocessing_layers(spec),
            *augmentation_layers(
                flip,
                rotation,
                zoom,
                contrast,
                augmentation_seed,
                value_range=preprocessed_range(spec),
            ),  # fmt: skip
            InferenceMode(base, name="base"),
            pool,
            *_head(dropout, dense_units, num_classes, classifier_activation),
        ],
        name=name,
        class_names=class_names,
    )


def _register_backbones() -> None:
    """Register every backbone under its own name: ``build_model("efficientnet_v2_b0")``."""
    for spec in BACKBONES.values():
        factory = functools.partial(build_transfer_model, backbone=spec.name, name=spec.name)
        register_model(
            spec.name, family=spec.family, input_size=spec.input_size, pretrained=True,
            params=spec.params, top1=spec.top1, description=spec.description,
        )(factory)  # fmt: skip


_register_backbones()


def get_base(model: keras.Model) -> keras.Model:
    """Return the pretrained base of a transfer model (the network inside its ``base`` layer).

    Examples:
        >>> get_base(build_transfer_model(weights=None)).name
        'mobilenetv2_1.00_160'
    """
    try:
        return model.get_layer("base").layer
    except (ValueError, AttributeError):
        raise InvalidArgumentError(
            f"Model {model.name!r} has no pretrained base; build it with build_transfer_model."
        ) from None


def outputs_logits(model: keras.Model) -> bool:
    """Return True when the model's last layer has no activation (it outputs logits)."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation in (None, keras.activations.linear)


def compile_model(
    model: keras.Model,
    learning_rate: float = 1e-3,
    *,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """Compile with Adam, the sparse categorical loss that matches the head, and accuracy.

    Softmax heads get ``from_logits=False``, logit heads (``classifier_activation=None``)
    ``from_logits=True``. Returns the model, compiled in place.

    Examples:
        >>> model = compile_model(build_baseline_model(), learning_rate=1e-3)
    """
    check_positive_number("learning_rate", learning_rate)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model)),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model
