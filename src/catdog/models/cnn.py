"""The tutorial's CNNs (A, B and C) as settings of one configurable factory,
[`build_cnn_model`][catdog.models.cnn.build_cnn_model].

"The tutorial", here and in all of catdog's documentation, is the "Image Classification with
TensorFlow" cats-vs-dogs tutorial catdog started from: the ``cats_and_dogs_filtered`` data at
160x160 and four models, A (a small CNN), B (with RandomFlip + RandomRotation), C (with
MobileNetV2 input scaling) and D (a frozen MobileNetV2 base under a small head)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import keras
from keras import layers

from catdog._rules import (
    DEFAULT_IMAGE_SIDE,
    DEFAULT_INPUT_SHAPE,
    check_int,
)
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import (
    check_classes,
    check_head,
    check_input_shape,
    classifier_from_layers,
    classifier_head,
)
from catdog.models.layers import augmentation_layers, mobilenet_v2_preprocessing
from catdog.models.registry import register_model


# ----------------------------------------------------------------------------- validation
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
    multi_label: bool = False,
) -> keras.Sequential:
    """Conv blocks; ``dropout`` sits after the last conv, before its pooling, as in the tutorial."""
    input_shape = check_input_shape(input_shape)
    num_classes, class_names = check_classes(num_classes, class_names)
    activation = check_head(dropout, dense_units, classifier_activation, multi_label)
    plan = _conv_plan(input_shape, filters, kernel_size, pool_size)
    body: list = []
    for i, (n_filters, kernel, pool) in enumerate(plan, start=1):
        body.append(layers.Conv2D(n_filters, kernel, activation="relu", name=f"conv_{i}"))
        if dropout and i == len(plan):
            body.append(layers.Dropout(dropout, name="conv_dropout"))
        body.append(layers.MaxPooling2D(pool, name=f"pool_{i}"))
    return classifier_from_layers(
        [
            keras.Input(shape=input_shape, name="image"),
            *input_layers,
            *body,
            *classifier_head(0, dense_units, num_classes, activation),
        ],
        name=name,
        class_names=class_names,
        multi_label=multi_label,
    )


CNN_PRESETS: dict[str, dict] = {
    "baseline": {"filters": (16, 32), "dropout": 0.3, "flip": None, "rotation": None},
    "augmented": {"filters": (16,), "dropout": 0.0},
    "preprocessed": {"filters": (16, 32), "dropout": 0.0, "scale_inputs": True},
}
"""The tutorial's three CNNs, as settings of
[`build_cnn_model`][catdog.models.cnn.build_cnn_model]."""


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
    multi_label: bool = False,
    name: str = "cnn",
) -> keras.Sequential:
    """A small CNN: optional input scaling and augmentation, conv blocks, a dense head.

    The tutorial's models 1-3 are presets of it ([`CNN_PRESETS`][catdog.models.cnn.CNN_PRESETS]):
    [`build_baseline_model`][catdog.models.cnn.build_baseline_model],
    [`build_augmented_model`][catdog.models.cnn.build_augmented_model] and
    [`build_preprocessed_model`][catdog.models.cnn.build_preprocessed_model].

    Args:
        input_shape: ``(height, width, 3)`` of the input images, positive integers; the model
            takes raw RGB pixels in 0..255.
        num_classes: the number of classes (outputs), at least 2. Defaults to 2, or to the
            number of ``class_names``.
        class_names: the name of each class, in output order; the model carries them (see
            [`ImageClassifier`][catdog.models.classifier.ImageClassifier]).
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
        multi_label: each class answered on its own (a photo may show several, or none):
            per-class sigmoid probabilities (or logits) and binary cross-entropy (see
            [`ImageClassifier`][catdog.models.classifier.ImageClassifier]).
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
        multi_label=multi_label,
    )


# The presets pass **kwargs on to build_cnn_model: their specs declare its arguments.
_CNN_ARGUMENTS = tuple(inspect.signature(build_cnn_model).parameters)


def _preset(name: str, input_shape, num_classes, kwargs: dict) -> keras.Sequential:
    return build_cnn_model(
        input_shape, num_classes, **{**CNN_PRESETS[name], "name": name, **kwargs}
    )


@register_model(
    "baseline",
    family="cnn",
    input_size=DEFAULT_IMAGE_SIDE,
    params=2_962_594,
    arguments=_CNN_ARGUMENTS,
)
def build_baseline_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 1: two Conv2D+MaxPooling blocks and a dense head, no augmentation.

    [`build_cnn_model`][catdog.models.cnn.build_cnn_model] with ``filters=(16, 32)``,
    ``dropout=0.3`` and no augmentation; other keyword arguments are that function's.
    Defaults give the tutorial's layers and 2,962,594 parameters at 160x160x3.

    Examples:
        >>> model = build_baseline_model(input_shape=(96, 96, 3), num_classes=3)
        >>> model.output_shape
        (None, 3)
    """
    return _preset("baseline", input_shape, num_classes, kwargs)


@register_model(
    "augmented",
    family="cnn",
    input_size=DEFAULT_IMAGE_SIDE,
    params=6_391_426,
    arguments=_CNN_ARGUMENTS,
)
def build_augmented_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 2: RandomFlip + RandomRotation(0.2), one Conv2D block, dense head.

    [`build_cnn_model`][catdog.models.cnn.build_cnn_model] with ``filters=(16,)``; other keyword
    arguments are that function's. Defaults give the tutorial's layers and 6,391,426
    parameters at 160x160x3.

    Examples:
        >>> model = build_augmented_model(rotation=0.1, zoom=0.1)
    """
    return _preset("augmented", input_shape, num_classes, kwargs)


@register_model(
    "preprocessed",
    family="cnn",
    input_size=DEFAULT_IMAGE_SIDE,
    params=2_962_594,
    arguments=_CNN_ARGUMENTS,
)
def build_preprocessed_model(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, num_classes: int | None = None, **kwargs
) -> keras.Sequential:
    """The tutorial's model 3: pixels scaled to -1..1, augmentation, two conv blocks, dense head.

    [`build_cnn_model`][catdog.models.cnn.build_cnn_model] with ``filters=(16, 32)`` and
    ``scale_inputs=True``; other keyword arguments are that function's. Defaults give the
    tutorial's layers and 2,962,594 parameters at 160x160x3.

    Examples:
        >>> model = build_preprocessed_model(filters=(32, 64), kernel_size=(5, 3))
    """
    return _preset("preprocessed", input_shape, num_classes, kwargs)
