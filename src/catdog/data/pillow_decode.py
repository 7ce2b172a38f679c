"""Decoding images without TensorFlow: Pillow's decoders and a NumPy copy of TensorFlow's
bilinear resize, so that a ``.tflite`` model predicts on a device without TensorFlow from the
pixels [`decode_image`][catdog.data.images.decode_image] gives in training.

PNG, GIF, BMP and WebP images give exactly TensorFlow's pixels: the resize is TensorFlow's own
arithmetic (half-pixel centres, no antialiasing, float32), rounded alike. Pillow's
``resize(..., BILINEAR)`` is not used: it antialiases when it shrinks, which
``tf.image.resize`` does not (pixels off by up to 160). A JPEG is decoded by libjpeg-turbo in
both, at the same reduced scale (1/2, 1/4 or 1/8, chosen by the same rule) and with the same
accurate integer DCT, so its pixels are TensorFlow's too. TensorFlow's default DCT, the fast
one (which catdog's decoder used before), differs from it by up to 6 levels on about half the
pixels: that moved a MobileNetV2 model's probabilities by 0.006-0.008 on average, 0.16 at
most, on photos of cats_and_dogs_filtered. One more difference: an 8-bit palette BMP, which
TensorFlow reads as the gray of its palette indices, gets its colours here."""

from __future__ import annotations

import os
import warnings

import numpy as np

FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
"""The formats read, as TensorFlow's decoders read them: any other file is not an image here."""


def pillow_pixels(path: str | os.PathLike, image_size: tuple[int, int]) -> np.ndarray:
    """An image file's ``uint8`` RGB pixels ``(height, width, 3)`` at ``image_size``, decoded
    by Pillow as [`decode_image`][catdog.data.images.decode_image] decodes it with TensorFlow.

    A JPEG at least twice ``image_size`` is decoded straight at 1/2, 1/4 or 1/8 scale (the
    same rule as ``decode_image``); grayscale, palette and RGBA images become RGB (alpha is
    dropped, as TensorFlow does); of a GIF only the first frame is read; EXIF orientation is
    not applied. Raises ``FileNotFoundError`` for a missing file and another exception (from
    Pillow) for a file that is not a readable BMP, GIF, JPEG, PNG or WebP image.

    Examples:
        ```python
        pillow_pixels("cat.jpg", (160, 160)).shape
        # (160, 160, 3)
        ```
    """
    from PIL import Image

    height, width = image_size
    with warnings.catch_warnings():  # the pixel limit is catdog's, checked before
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path, formats=FORMATS) as image:
            if image.format == "JPEG":
                image.draft("RGB", (width, height))  # libjpeg's DCT scaling, as TensorFlow's
            pixels = np.asarray(image.convert("RGB"))
    return resize_bilinear(pixels, image_size)


def _sample_points(size_in: int, size_out: int):
    """TensorFlow's bilinear sample points along one axis: the lower and upper source indices
    and the weight of the upper one (half-pixel centres, computed in float32)."""
    scale = np.float32(size_in) / np.float32(size_out)
    centre = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centre)
    lower = np.clip(floor, 0, size_in - 1).astype(np.intp)
    upper = np.clip(np.ceil(centre), 0, size_in - 1).astype(np.intp)
    return lower, upper, (centre - floor).astype(np.float32)


def resize_bilinear(pixels: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``pixels`` ``(h, w, channels)`` resized to ``image_size`` as ``tf.image.resize`` does
    (bilinear, half-pixel centres, no antialiasing, in float32), rounded half to even and
    clipped to ``uint8``, as [`decode_image`][catdog.data.images.decode_image] rounds.

    Examples:
        >>> import numpy as np
        >>> resize_bilinear(np.array([[[0], [255]]], np.uint8), (1, 4))[..., 0].tolist()
        [[0, 64, 191, 255]]
    """
    image = np.asarray(pixels, np.float32)
    top_row, bottom_row, y_weight = _sample_points(image.shape[0], int(image_size[0]))
    left, right, x_weight = _sample_points(image.shape[1], int(image_size[1]))
    x_weight = x_weight[None, :, None]
    top, bottom = image[top_row], image[bottom_row]
    top = top[:, left] + (top[:, right] - top[:, left]) * x_weight
    bottom = bottom[:, left] + (bottom[:, right] - bottom[:, left]) * x_weight
    out = top + (bottom - top) * y_weight[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
