"""Transfer models (the tutorial's model D and every ``keras.applications`` backbone): a frozen
pretrained base under a small head; unfreezing the top of the base for fine-tuning."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import keras
from keras import layers

from catdog._rules import (
    DEFAULT_IMAGE_SIDE,
    DEFAULT_INPUT_SHAPE,
    DEFAULT_UNFREEZE_FROM,
    check_choice,
    is_number_in,
)
from catdog.errors import InvalidArgumentError
from catdog.models.backbones import (
    BACKBONES,
    build_base,
    get_backbone,
    preprocessed_range,
    preprocessing_layers,
)
from catdog.models.classifier import (
    check_classes,
    check_head,
    check_input_shape,
    classifier_from_layers,
    classifier_head,
    get_base,
)
from catdog.models.layers import InferenceMode, augmentation_layers
from catdog.models.registry import register_model, register_preset

POOLINGS = ("max", "avg")
"""How a transfer model pools its base's feature map: global max (the tutorial's) or average."""


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
    multi_label: bool = False,
    name: str = "transfer",
) -> keras.Sequential:
    """The tutorial's model 4: a pretrained ImageNet base (MobileNetV2) under a small head.

    Any ``keras.applications`` backbone can be the base (``backbone=``, see
    [`BACKBONES`][catdog.models.backbones.BACKBONES]); its own preprocessing is a layer inside the
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
            [`ImageClassifier`][catdog.models.classifier.ImageClassifier]).
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
        multi_label: each class answered on its own (a photo may show several, or none):
            per-class sigmoid probabilities (or logits) and binary cross-entropy.
        name: the model's name.

    Examples:
        >>> build_transfer_model(weights=None).count_params()
        2340098
        >>> model = build_transfer_model((96, 96, 3), backbone="resnet50", weights=None)
        >>> [layer.name for layer in model.layers][:2]
        ['resnet_preprocessing', 'random_flip']
    """
    input_shape = check_input_shape(input_shape)
    spec = get_backbone(backbone)
    num_classes, class_names = check_classes(num_classes, class_names)
    activation = check_head(dropout, dense_units, classifier_activation, multi_label)
    check_choice("pooling", pooling, POOLINGS)
    base = build_base(spec, input_shape, weights)
    base.trainable = bool(base_trainable)
    pool = (
        layers.GlobalMaxPooling2D(name="global_pool")
        if pooling == "max"
        else layers.GlobalAveragePooling2D(name="global_pool")
    )
    return classifier_from_layers(
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
            *classifier_head(dropout, dense_units, num_classes, activation),
        ],
        name=name,
        class_names=class_names,
        multi_label=multi_label,
    )


def _register_backbones() -> None:
    """Register every backbone under its own name: ``build_model("efficientnet_v2_b0")``."""
    for spec in BACKBONES.values():
        factory = functools.partial(build_transfer_model, backbone=spec.name, name=spec.name)
        register_model(
            spec.name, family=spec.family, input_size=spec.input_size, pretrained=True,
            params=spec.params, top1=spec.top1, description=spec.description,
        )(factory)  # fmt: skip


def _register_presets() -> None:
    """Register the tutorial's model 4, ``"transfer"``: a preset of ``"mobilenet_v2"`` at the
    tutorial's 160x160 with the factory's default head (the tutorial's), named ``transfer``."""
    register_preset(
        "transfer", "mobilenet_v2", {"name": "transfer"}, input_size=DEFAULT_IMAGE_SIDE,
        description=(build_transfer_model.__doc__ or "").strip().splitlines()[0],
    )  # fmt: skip


_register_backbones()
_register_presets()


def unfreeze_base(
    model: keras.Model, unfreeze_from: float | int | str = DEFAULT_UNFREEZE_FROM
) -> int:
    """Make the base's layers from ``unfreeze_from`` on trainable (see ``check_unfreeze_from``).

    BatchNormalization layers keep running in inference mode (the base is wrapped in
    [`catdog.InferenceMode`][catdog.models.layers.InferenceMode]). Returns the number of trainable
    base
    layers.

    Examples:
        ```python
        unfreeze_base(model, unfreeze_from=0.65)
        # 54
        ```
    """
    base = get_base(model)
    start = check_unfreeze_from(model, unfreeze_from)
    base.trainable = True
    for layer in base.layers[:start]:
        layer.trainable = False
    return len(base.layers) - start


def check_unfreeze_from(model: keras.Model, unfreeze_from: float | int | str) -> int:
    """Return the index of the first base layer to unfreeze, or raise a clear error.

    ``unfreeze_from`` is a fraction of the base's depth in ``[0, 1)`` (a ``float``: layer
    ``round(fraction * depth)``, the same share of any backbone), a layer index (an ``int``)
    or a layer name. Changes nothing: call it before training to find a bad value before any
    epoch runs.

    Examples:
        ```python
        check_unfreeze_from(model, 0.65)  # MobileNetV2: 154 layers
        # 100
        ```
    """
    names = [layer.name for layer in get_base(model).layers]
    if isinstance(unfreeze_from, float):
        check_unfreeze_fraction(unfreeze_from)
        return min(round(unfreeze_from * len(names)), len(names) - 1)
    if isinstance(unfreeze_from, str):
        if unfreeze_from not in names:
            raise InvalidArgumentError(
                f"The base has no layer named {unfreeze_from!r}; pass a layer index "
                f"(0-{len(names) - 1}) or one of its layer names, e.g. {names[-10]!r}."
            )
        start = names.index(unfreeze_from)
    elif (
        isinstance(unfreeze_from, bool)
        or not isinstance(unfreeze_from, int)
        or not (0 <= unfreeze_from < len(names))
    ):
        raise InvalidArgumentError(
            f"unfreeze_from must be a fraction of the base's depth in [0, 1), a layer index in "
            f"0..{len(names) - 1} or a layer name, got {unfreeze_from!r}."
        )
    else:
        start = unfreeze_from
    return start


def check_unfreeze_fraction(fraction: float) -> float:
    """Return ``fraction`` if it is a fraction of a base's depth in ``[0, 1)``; else raise.

    Examples:
        >>> check_unfreeze_fraction(0.65)
        0.65
    """
    if not is_number_in(fraction, 0, 1, high_included=False):
        raise InvalidArgumentError(
            f"unfreeze_from as a fraction of the base's depth must be in [0, 1), got "
            f"{fraction!r}; pass an int for a layer index."
        )
    return fraction
