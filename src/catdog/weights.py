"""Weights for a pretrained base when the ImageNet download is not possible (offline work).

[`make_stand_in_weights`][catdog.weights.make_stand_in_weights] writes MobileNetV2 weights whose
BatchNorm statistics are calibrated on your images: for demos, tests and benchmarks without a
network. Real photos need the real ImageNet weights (``weights="imagenet"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catdog.errors import InvalidArgumentError


def make_stand_in_weights(path: str | os.PathLike, images, *, seed: int = 0) -> Path:
    """Write offline stand-in MobileNetV2 weights (no top) for ``build_transfer_model``.

    Random convolutions whose BatchNorm statistics are measured on ``images`` (an array or
    tensor of 0..255 pixels, ``(n, height, width, 3)``; a batch or two is enough). A randomly
    initialised MobileNetV2 in inference mode outputs near-zero features and the ImageNet
    weights need a download; these give frozen features that a head can learn from on
    generated data. For demos, tests and benchmarks: real photos need the ImageNet weights.
    ``path`` must end in ``.weights.h5``; the model's input size is the images' size.

    Examples:
        ```python
        images, _ = next(iter(splits.train))
        path = make_stand_in_weights("stand_in.weights.h5", images)
        model = build_transfer_model(input_shape=(64, 64, 3), weights=path)
        ```
    """
    import keras

    from catdog.io import write_atomic

    if not str(path).endswith(".weights.h5"):
        raise InvalidArgumentError(f"path must end in '.weights.h5', got {str(path)!r}.")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 32:
        raise InvalidArgumentError(
            f"images must have shape (n, height, width, 3) with sides >= 32, got {images.shape}."
        )
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(
        input_shape=images.shape[1:], include_top=False, weights=None
    )
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the moving statistics become these images' statistics
    base(images / 127.5 - 1.0, training=True)  # the scaling of catdog's transfer model
    return write_atomic(path, base.save_weights)
