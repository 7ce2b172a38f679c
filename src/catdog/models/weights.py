"""Weights for a pretrained base when the ImageNet download is not possible (offline work).

[`make_stand_in_weights`][catdog.models.weights.make_stand_in_weights] writes backbone weights whose
BatchNorm statistics are calibrated on your images: for demos, tests and benchmarks without a
network. Real photos need the real ImageNet weights (``weights="imagenet"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.io import write_atomic
from catdog.models.backbones import build_base, get_backbone, preprocessing_layers


def make_stand_in_weights(
    path: str | os.PathLike, images, *, backbone: str = "mobilenet_v2", seed: int = 0
) -> Path:
    """Write offline stand-in weights (no top) of ``backbone`` for ``build_transfer_model``.

    Random convolutions whose BatchNorm statistics are measured on ``images`` (an array or
    tensor of 0..255 pixels, ``(n, height, width, 3)``; a batch or two is enough), seen
    through the backbone's own preprocessing. A randomly initialised base in inference mode
    outputs near-zero features and the ImageNet weights need a download; these give frozen
    features that a head can learn from on generated data. For demos, tests and benchmarks:
    real photos need the ImageNet weights. ``path`` must end in ``.weights.h5``; the base's
    input size is the images' size (backbones without BatchNorm, VGG and ConvNeXt, keep their
    random initialisation).

    Examples:
        ```python
        images, _ = next(iter(splits.train))
        path = make_stand_in_weights("b0.weights.h5", images, backbone="efficientnet_b0")
        model = build_transfer_model((64, 64, 3), backbone="efficientnet_b0", weights=path)
        ```
    """
    import keras

    spec = get_backbone(backbone)
    if not str(path).endswith(".weights.h5"):
        raise InvalidArgumentError(f"path must end in '.weights.h5', got {str(path)!r}.")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidArgumentError(
            f"images must have shape (n, height, width, 3), got {images.shape}."
        )
    keras.utils.set_random_seed(seed)
    base = build_base(spec, images.shape[1:], None)  # checks the size against the backbone
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the moving statistics become these images' statistics
    for layer in preprocessing_layers(spec):  # what the transfer model feeds its base
        images = layer(images)
    base(images, training=True)
    return write_atomic(path, base.save_weights)
