"""The pretrained bases: every ``keras.applications`` ImageNet backbone, described by one table.

Each entry of [`BACKBONES`][catdog.models.backbones.BACKBONES] says how its Keras class is built,
which preprocessing its weights were trained with, its default (ImageNet) and minimum input
side, the parameters of catdog's two-class transfer model on it, and its ImageNet top-1
accuracy as published in the Keras Applications table. The transfer factory
([`build_transfer_model`][catdog.models.transfer.build_transfer_model]) and the model registry read
this table; nothing else names a backbone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras

from catdog._rules import did_you_mean
from catdog.errors import DownloadError, InputFileNotFoundError, InvalidArgumentError
from catdog.models.layers import ImageNetPreprocessing, mobilenet_v2_preprocessing


@dataclass(frozen=True)
class Backbone:
    """One ``keras.applications`` backbone: how to build it and what is known about it.

    Attributes:
        name: catdog's name, the Keras class name in snake case (``"efficientnet_v2_b0"``).
        keras_class: the function in ``keras.applications`` (``"EfficientNetV2B0"``).
        family: the ``keras.applications`` module whose ``preprocess_input`` the weights
            expect (``"efficientnet_v2"``).
        preprocessing: ``"tf"`` (pixels to -1..1), ``"caffe"`` (BGR, ImageNet mean
            subtracted), ``"torch"`` (0..1, ImageNet mean and std) or ``None`` when the Keras
            model rescales raw 0..255 pixels itself (EfficientNet, EfficientNetV2, ConvNeXt,
            MobileNetV3).
        input_size: the side of the images its ImageNet weights were trained on.
        min_size: the smallest input side Keras accepts for it.
        params: the parameters of catdog's two-class transfer model on it with the default
            head (the same at every input size).
        top1: ImageNet top-1 accuracy (%) as published for the Keras weights.
    """

    name: str
    keras_class: str
    family: str
    preprocessing: str | None
    input_size: int
    min_size: int
    params: int
    top1: float

    @property
    def description(self) -> str:
        """A one-line description for model tables."""
        return (
            f"{self.keras_class} (ImageNet, top-1 {self.top1}%) under a small head; "
            f"{self.input_size}x{self.input_size} by default."
        )


def _entries(family, preprocessing, min_size, rows):
    return {
        name: Backbone(name, keras_class, family, preprocessing, size, min_size, params, top1)
        for name, keras_class, size, params, top1 in rows
    }


# Parameters: catdog's two-class model with the default head (counted with weights=None);
# top-1: the Keras Applications table (MobileNetV3: its Keras docstring).
BACKBONES: dict[str, Backbone] = {
    **_entries("convnext", None, 32, [
        ("convnext_tiny", "ConvNeXtTiny", 224, 27_869_474, 81.3),
        ("convnext_small", "ConvNeXtSmall", 224, 49_504_034, 82.3),
        ("convnext_base", "ConvNeXtBase", 224, 87_632_194, 85.3),
        ("convnext_large", "ConvNeXtLarge", 224, 196_328_834, 86.3),
        ("convnext_xlarge", "ConvNeXtXLarge", 224, 348_279_234, 86.7),
    ]),
    **_entries("densenet", "torch", 32, [
        ("densenet121", "DenseNet121", 224, 7_103_234, 75.0),
        ("densenet169", "DenseNet169", 224, 12_749_570, 76.2),
        ("densenet201", "DenseNet201", 224, 18_445_058, 77.3),
    ]),
    **_entries("efficientnet", None, 32, [
        ("efficientnet_b0", "EfficientNetB0", 224, 4_131_685, 77.1),
        ("efficientnet_b1", "EfficientNetB1", 240, 6_657_353, 79.1),
        ("efficientnet_b2", "EfficientNetB2", 260, 7_858_875, 80.1),
        ("efficientnet_b3", "EfficientNetB3", 300, 10_882_033, 81.6),
        ("efficientnet_b4", "EfficientNetB4", 380, 17_788_705, 82.9),
        ("efficientnet_b5", "EfficientNetB5", 456, 28_644_793, 83.6),
        ("efficientnet_b6", "EfficientNetB6", 528, 41_107_793, 84.0),
        ("efficientnet_b7", "EfficientNetB7", 600, 64_261_721, 84.3),
    ]),
    **_entries("efficientnet_v2", None, 32, [
        ("efficientnet_v2_b0", "EfficientNetV2B0", 224, 6_001_426, 78.7),
        ("efficientnet_v2_b1", "EfficientNetV2B1", 240, 7_013_238, 79.8),
        ("efficientnet_v2_b2", "EfficientNetV2B2", 260, 8_859_680, 80.5),
        ("efficientnet_v2_b3", "EfficientNetV2B3", 300, 13_029_120, 82.0),
        ("efficientnet_v2_s", "EfficientNetV2S", 384, 20_413_474, 83.9),
        ("efficientnet_v2_m", "EfficientNetV2M", 480, 53_232_502, 85.3),
        ("efficientnet_v2_l", "EfficientNetV2L", 480, 117_828_962, 85.7),
    ]),
    **_entries("inception_resnet_v2", "tf", 75, [
        ("inception_resnet_v2", "InceptionResNetV2", 299, 54_435_234, 80.3),
    ]),
    **_entries("inception_v3", "tf", 75, [
        ("inception_v3", "InceptionV3", 299, 21_934_050, 77.9),
    ]),
    **_entries("mobilenet", "tf", 32, [
        ("mobilenet", "MobileNet", 224, 3_294_594, 70.4),
    ]),
    **_entries("mobilenet_v2", "tf", 32, [
        ("mobilenet_v2", "MobileNetV2", 224, 2_340_098, 71.3),
    ]),
    **_entries("mobilenet_v3", None, 32, [
        ("mobilenet_v3_small", "MobileNetV3Small", 224, 976_178, 68.1),
        ("mobilenet_v3_large", "MobileNetV3Large", 224, 3_057_986, 75.6),
    ]),
    **_entries("nasnet", "tf", 32, [
        ("nasnet_mobile", "NASNetMobile", 224, 4_337_494, 74.4),
        ("nasnet_large", "NASNetLarge", 331, 85_175_060, 82.5),
    ]),
    **_entries("resnet", "caffe", 32, [
        ("resnet50", "ResNet50", 224, 23_718_978, 74.9),
        ("resnet101", "ResNet101", 224, 42_789_442, 76.4),
        ("resnet152", "ResNet152", 224, 58_502_210, 76.6),
    ]),
    **_entries("resnet_v2", "tf", 32, [
        ("resnet50_v2", "ResNet50V2", 224, 23_696_066, 76.0),
        ("resnet101_v2", "ResNet101V2", 224, 42_757_826, 77.2),
        ("resnet152_v2", "ResNet152V2", 224, 58_462_914, 78.0),
    ]),
    **_entries("vgg16", "caffe", 32, [("vgg16", "VGG16", 224, 14_747_650, 71.3)]),
    **_entries("vgg19", "caffe", 32, [("vgg19", "VGG19", 224, 20_057_346, 71.3)]),
    **_entries("xception", "tf", 71, [("xception", "Xception", 299, 20_992_746, 79.0)]),
}  # fmt: skip
"""Every backbone by name; [`list_models`][catdog.models.registry.list_models] lists them all."""


def get_backbone(name: str) -> Backbone:
    """The table entry of backbone ``name``, or an error naming the close matches.

    Examples:
        >>> get_backbone("efficientnet_v2_b0").input_size
        224
        >>> get_backbone("efficientnetv2_b0")
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: Unknown backbone 'efficientnetv2_b0'. Did you mean \
'efficientnet_v2_b0', 'efficientnet_b0' or 'efficientnet_v2_b3'? The backbones: ...
    """
    if name in BACKBONES:
        return BACKBONES[name]
    raise InvalidArgumentError(
        f"Unknown backbone {name!r}.{did_you_mean(name, BACKBONES)} The backbones: "
        f"{', '.join(BACKBONES)}."
    )


def check_input_side(backbone: Backbone, input_shape) -> None:
    """Raise an error unless both sides of ``input_shape`` reach the backbone's minimum.

    (No backbone needs its ImageNet size: without their top, the Keras models, NASNet's
    included, have the same weights at every size.)

    Examples:
        >>> check_input_side(get_backbone("xception"), (64, 64, 3))
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: xception needs inputs of at least 71x71, got \
input_shape=(64, 64, 3). Its ImageNet weights were trained at 299x299; use that size or one \
close to it.
    """
    if min(input_shape[:2]) < backbone.min_size:
        raise InvalidArgumentError(
            f"{backbone.name} needs inputs of at least {backbone.min_size}x{backbone.min_size}, "
            f"got input_shape={tuple(input_shape)}. Its ImageNet weights were trained at "
            f"{backbone.input_size}x{backbone.input_size}; use that size or one close to it."
        )


def preprocessing_layers(backbone: Backbone) -> list[keras.layers.Layer]:
    """The layers that turn 0..255 pixels into what the backbone's weights expect.

    Exactly ``keras.applications.<family>.preprocess_input`` as serializable layers: a
    ``Rescaling`` for ``"tf"``, an
    [`ImageNetPreprocessing`][catdog.models.layers.ImageNetPreprocessing]
    layer for ``"caffe"``/``"torch"``, and none for backbones that rescale inside.

    Examples:
        >>> [type(layer).__name__ for layer in preprocessing_layers(get_backbone("resnet50"))]
        ['ImageNetPreprocessing']
    """
    name = f"{backbone.family}_preprocessing"
    if backbone.preprocessing is None:
        return []
    if backbone.preprocessing == "tf":  # MobileNetV2's scaling, shared by its family
        return [mobilenet_v2_preprocessing(name=name)]
    return [ImageNetPreprocessing(backbone.preprocessing, name=name)]


def preprocessed_range(backbone: Backbone) -> tuple[float, float]:
    """The range that 0..255 pixels span after the backbone's preprocessing (all channels).

    Augmentation layers after the preprocessing (``RandomContrast``) clip to it.

    Examples:
        >>> preprocessed_range(get_backbone("mobilenet_v2"))
        (-1.0, 1.0)
    """
    import numpy as np

    pixels = np.array([[[[0.0, 0.0, 0.0], [255.0, 255.0, 255.0]]]], dtype="float32")
    for layer in preprocessing_layers(backbone):
        pixels = keras.ops.convert_to_numpy(layer(pixels))
    return float(np.min(pixels)), float(np.max(pixels))


def build_base(backbone: Backbone, input_shape, weights) -> keras.Model:
    """The backbone without its top, with ``weights`` ``"imagenet"``, ``None`` or a file.

    Errors name the problem: a weights path that is not a file, a file that does not fit,
    a failed download (with the offline alternatives).

    Examples:
        >>> build_base(get_backbone("mobilenet_v2"), (96, 96, 3), None).name
        'mobilenetv2_1.00_96'
    """
    check_input_side(backbone, input_shape)
    if weights is not None and weights != "imagenet":
        if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
            raise InputFileNotFoundError(
                f"weights must be 'imagenet', None or the path of a weights file; {weights!r} "
                "is not an existing file."
            )
        weights = os.fspath(weights)
    factory = getattr(keras.applications, backbone.keras_class)
    try:
        return factory(input_shape=tuple(input_shape), include_top=False, weights=weights)
    except ValueError as error:
        if weights not in (None, "imagenet"):
            first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise InvalidArgumentError(
                f"Could not load {backbone.keras_class} weights from {weights!r}: {first_line} "
                f"The file must hold weights of {backbone.keras_class} without its top."
            ) from error
        raise
    except Exception as error:  # the download raises a bare Exception on network errors
        if weights != "imagenet":
            raise
        raise DownloadError(
            f"Could not download the ImageNet weights of {backbone.keras_class} "
            f"({type(error).__name__}: {error}). Without network access, pass "
            "weights='path/to/weights_no_top.h5' (a local weights file) or weights=None "
            "(random initialisation)."
        ) from error
