"""Pillow's pixels are TensorFlow's: the decoder a ``.tflite`` model predicts with, without
TensorFlow, against ``decode_image``, which the model was trained on."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from catdog.data.images import decode_image, read_image_batches
from catdog.data.pillow_decode import pillow_pixels, resize_bilinear


def _photo(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A smooth random RGB image (a coarse grid upsampled), like a photo to a JPEG encoder."""
    coarse = (rng.random((height // 8 + 2, width // 8 + 2, 3)) * 255).astype(np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.BICUBIC)


def _both(path, size):
    tensorflow = decode_image(tf.io.read_file(str(path)), size).numpy().astype(int)
    return tensorflow, pillow_pixels(path, size).astype(int)


@pytest.mark.parametrize("size_in", [(1, 1), (7, 300), (161, 160), (480, 640), (33, 31)])
@pytest.mark.parametrize("size_out", [(16, 16), (160, 160), (224, 96)])
def test_resize_is_tensorflows_bilinear_resize(rng, size_in, size_out):
    pixels = rng.integers(0, 256, (*size_in, 3), dtype=np.uint8)
    expected = tf.cast(
        tf.clip_by_value(tf.round(tf.image.resize(pixels, size_out)), 0, 255), tf.uint8
    )
    np.testing.assert_array_equal(resize_bilinear(pixels, size_out), expected.numpy())


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
@pytest.mark.parametrize("suffix", [".png", ".bmp", ".gif", ".webp"])
def test_lossless_formats_give_tensorflows_pixels(rng, tmp_path, mode, suffix):
    if suffix == ".bmp" and mode in ("RGBA", "P"):
        pytest.skip("TensorFlow reads no 32-bit BMP, and a palette BMP's indices as gray")
    path = tmp_path / f"image{suffix}"
    _photo(rng, 90, 130).convert(mode).save(
        path, **({"lossless": True} if suffix == ".webp" else {})
    )
    tensorflow, pillow = _both(path, (64, 64))
    np.testing.assert_array_equal(pillow, tensorflow)


@pytest.mark.parametrize("side", [40, 100, 300, 700])  # full, 1/2, 1/4 and 1/8 scale for 64
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0 chroma
def test_jpegs_give_tensorflows_pixels_at_every_scale(rng, tmp_path, side, mode, subsampling):
    path = tmp_path / "photo.jpg"
    _photo(rng, side, side + 37).convert(mode).save(path, quality=90, subsampling=subsampling)
    tensorflow, pillow = _both(path, (64, 64))
    np.testing.assert_array_equal(pillow, tensorflow)


def test_pillow_batches_say_why_a_file_is_not_read(rng, tmp_path):
    good = tmp_path / "good.png"
    _photo(rng, 20, 20).save(good)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    tiff = tmp_path / "scan.png"  # a format TensorFlow does not read, whatever its name
    _photo(rng, 20, 20).save(tiff, format="TIFF")
    paths = [good, text, tiff] * 12  # more than one batch: decoded on threads
    for decoder in ("tensorflow", "pillow"):
        batches = list(read_image_batches(paths, (16, 16), 8, decoder=decoder))
        errors = [e for batch in batches for e in batch.errors]
        assert [e is None for e in errors] == [p == good for p in paths], decoder
        assert sum(len(batch.pixels) for batch in batches) == 12
