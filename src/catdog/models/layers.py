"""Reusable preprocessing and augmentation layers.

Everything here is a plain, serializable Keras layer (no ``Lambda``), so models that use them
survive ``model.save("m.keras")`` and ``keras.saving.load_model(..., safe_mode=True)``.
"""

from __future__ import annotations

import keras
from keras import layers

from catdog._rules import check_choice, check_fraction

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
"""The ``RandomFlip`` modes; ``flip=None`` leaves the flip out."""
AUGMENTATION_FACTORS = ("rotation", "zoom", "contrast")
"""The augmentation arguments that are a factor in ``[0, 1]`` (``None`` or ``0``: left out)."""


def check_augmentation(flip: str | None = None, **factors: float | None) -> None:
    """Raise unless ``flip`` and the factors (``rotation=``, ``zoom=``, ``contrast=``) are
    values [`augmentation_layers`][catdog.models.layers.augmentation_layers] takes.

    Examples:
        >>> check_augmentation("vertical", rotation=0.1)
        >>> check_augmentation(zoom=1.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: zoom must be a number in [0, 1] (or None to leave...
    """
    if flip is not None:
        check_choice("flip", flip, FLIP_MODES, hint="None leaves the flip out.")
    for name, value in factors.items():
        check_choice("augmentation factor", name, AUGMENTATION_FACTORS)
        check_fraction(name, value, high_included=True, optional=True)


def augmentation_layers(
    flip: str | None = "horizontal_and_vertical",
    rotation: float | None = 0.2,
    zoom: float | None = None,
    contrast: float | None = None,
    seed: int | None = None,
    value_range: tuple[float, float] = (0, 255),
) -> list[keras.layers.Layer]:
    """Return the augmentation layers, in order, for splicing into a model.

    The defaults are the tutorial's ``RandomFlip()`` + ``RandomRotation(0.2)``. All layers are
    active only in training; at inference they pass images through unchanged.

    Args:
        flip: the ``RandomFlip`` mode: ``"horizontal"``, ``"vertical"`` or
            ``"horizontal_and_vertical"``; ``None`` leaves the flip out.
        rotation: the ``RandomRotation`` factor, a fraction of a full turn in ``[0, 1]``
            (0.2 = up to +-72 degrees); ``None`` or ``0`` leaves the layer out.
        zoom: the ``RandomZoom`` factor in ``[0, 1]``: zoom in or out by up to this fraction,
            keeping the aspect ratio (0.1 = up to +-10%); ``None`` or ``0`` leaves it out.
        contrast: the ``RandomContrast`` factor in ``[0, 1]``: each channel's contrast is scaled
            by a random factor in ``[1 - contrast, 1 + contrast]``; ``None`` or ``0`` leaves it
            out.
        seed: the seed of the random layers; ``None`` for unseeded ones.
        value_range: the ``(low, high)`` pixel range the layers see (``(-1, 1)`` after
            MobileNetV2 preprocessing), which ``RandomContrast`` clips its output to.

    Examples:
        >>> [type(layer).__name__ for layer in augmentation_layers()]
        ['RandomFlip', 'RandomRotation']
    """
    check_augmentation(flip, rotation=rotation, zoom=zoom, contrast=contrast)
    result: list[keras.layers.Layer] = []
    if flip:
        result.append(layers.RandomFlip(flip, seed=seed, name="random_flip"))
    if rotation:
        result.append(layers.RandomRotation(rotation, seed=seed, name="random_rotation"))
    if zoom:
        result.append(layers.RandomZoom(zoom, seed=seed, name="random_zoom"))
    if contrast:
        result.append(
            layers.RandomContrast(
                contrast, value_range=value_range, seed=seed, name="random_contrast"
            )
        )
    return result


def build_augmentation(
    flip: str | None = "horizontal_and_vertical",
    rotation: float | None = 0.2,
    zoom: float | None = None,
    contrast: float | None = None,
    seed: int | None = None,
    name: str = "augmentation",
) -> keras.Sequential:
    """Return the augmentation block as one ``keras.Sequential`` layer.

    The layers of [`augmentation_layers`][catdog.models.layers.augmentation_layers], for pixels in
    0..255 (``RandomContrast`` clips to that range). Useful on its own, e.g. to preview
    augmentations or to put in front of a model of your own.

    Args:
        flip: as in [`augmentation_layers`][catdog.models.layers.augmentation_layers].
        rotation: as in ``augmentation_layers``.
        zoom: as in ``augmentation_layers``.
        contrast: as in ``augmentation_layers``.
        seed: as in ``augmentation_layers``.
        name: the name of the ``keras.Sequential`` block.

    Examples:
        ```python
        augment = build_augmentation(rotation=0.1)
        augment(images, training=True).shape
        # TensorShape([32, 160, 160, 3])
        ```
    """
    return keras.Sequential(augmentation_layers(flip, rotation, zoom, contrast, seed), name=name)


def mobilenet_v2_preprocessing(name: str = "mobilenet_v2_preprocessing") -> layers.Rescaling:
    """Return a layer that maps pixels from 0..255 to -1..1, as MobileNetV2 expects.

    It computes the same as ``keras.applications.mobilenet_v2.preprocess_input`` but as a
    serializable ``Rescaling`` layer inside the model, so an exported model takes raw pixels.

    Examples:
        ```python
        float(mobilenet_v2_preprocessing()(np.array([[0.0, 255.0]]))[0, 1])
        # 1.0
        ```
    """
    return layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name=name)


PREPROCESSING_MODES = ("caffe", "torch", "tf")


@keras.saving.register_keras_serializable(package="catdog")
class ImageNetPreprocessing(keras.layers.Layer):
    """``keras.applications.imagenet_utils.preprocess_input(x, mode=mode)`` as a layer.

    ``"caffe"`` (ResNet, VGG) flips RGB to BGR and subtracts the ImageNet channel means;
    ``"torch"`` (DenseNet) scales to 0..1 and normalises with the ImageNet means and standard
    deviations; ``"tf"`` scales to -1..1. A serializable layer (no ``Lambda``), so a model that
    holds it takes raw 0..255 pixels and loads with ``safe_mode=True``.

    Examples:
        ```python
        layer = ImageNetPreprocessing("caffe")
        layer(np.array([[[[255.0, 0.0, 0.0]]]]))  # BGR, means subtracted
        # [[[[-103.939, -116.779, 131.32]]]]
        ```
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, PREPROCESSING_MODES)

    def call(self, inputs):
        return keras.applications.imagenet_utils.preprocess_input(inputs, mode=self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="catdog")
class InferenceMode(keras.layers.Wrapper):
    """Run the wrapped layer with ``training=False``, always.

    Keras 3 passes the outer ``training`` flag to nested models even when they were called
    with ``training=False``, so a pretrained base's BatchNormalization statistics would drift
    once the base is unfrozen for fine-tuning. Wrapping the base keeps its BatchNorm layers in
    inference mode while its weights can still be trained.

    Examples:
        ```python
        base = keras.applications.MobileNetV2(include_top=False, weights=None)
        frozen_stats_base = InferenceMode(base)
        ```
    """

    def call(self, inputs):
        return self.layer(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)
