"""Reading images: decoding bytes to pixels (the training pipeline, prediction and the exported
SavedModel's bytes signature all use [`decode_image`][catdog.data.images.decode_image], so
they see the same pixels; an animated GIF gives its first frame; a ``.tflite`` file's
predictions get the same pixels from Pillow, see [`DECODERS`][catdog.data.images.DECODERS]),
the pixel limit checked from headers before decoding, and reading many files in fixed-size
batches.

EXIF orientation is not applied, in training and in prediction alike (TensorFlow's decoders
and Pillow's, as used here, both ignore it), so the two always agree; rotate such photos on
disk if their orientation matters."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import check_choice, check_int
from catdog.data.gif import first_gif_frame
from catdog.errors import InputFileNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    import tensorflow as tf

MAX_IMAGE_PIXELS: int | None = 89_478_485
"""Images with more pixels are skipped in datasets and refused by ``predict``.

Pillow's decompression-bomb limit. Set it to ``None`` to lift the limit, as with Pillow's own
``Image.MAX_IMAGE_PIXELS``.
"""


# ----------------------------------------------------------------------------- reading images
def decode_image(data: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes (BMP, GIF, JPEG, PNG, WebP; any size) to ``image_size`` RGB pixels.

    Returns a ``uint8`` tensor ``(height, width, 3)``: decoded (large JPEGs straight at 1/2,
    1/4 or 1/8 scale by libjpeg when that still leaves ``image_size`` pixels, with its
    accurate integer DCT, as Pillow decodes them: see
    [`pillow_pixels`][catdog.data.pillow_decode.pillow_pixels]), resized
    bilinearly as Keras' loader does, rounded. Grayscale, RGBA, CMYK and GIF (first frame)
    become RGB; of an animated GIF only the first frame is read (see
    [`first_gif_frame`][catdog.data.gif.first_gif_frame]), so its memory does not grow with
    its frames. A graph function: usable inside ``tf.data`` and exported signatures.

    Examples:
        ```python
        pixels = decode_image(tf.io.read_file("cat.jpg"), (160, 160))
        ```
    """
    import tensorflow as tf

    height, width = image_size

    def decode_jpeg():
        # libjpeg's DCT scaling: much faster for large JPEGs, and less aliasing
        shape = tf.image.extract_jpeg_shape(data)
        scale = tf.minimum(shape[0] // height, shape[1] // width)
        branch = tf.where(scale >= 8, 3, tf.where(scale >= 4, 2, tf.where(scale >= 2, 1, 0)))
        return tf.switch_case(
            branch,
            [lambda r=r: _decode_jpeg(data, r) for r in (1, 2, 4, 8)],
        )

    image = tf.cond(
        tf.io.is_jpeg(data),
        decode_jpeg,
        lambda: tf.io.decode_image(first_gif_frame(data), channels=3, expand_animations=False),
    )
    image = tf.image.resize(image, image_size)  # bilinear, as Keras' loader
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    image.set_shape((height, width, 3))
    return image


def _decode_jpeg(data, ratio: int):
    """A JPEG's RGB pixels at 1/``ratio`` scale, by libjpeg's accurate integer DCT (TensorFlow's
    default, the fast one, differs from Pillow's decoder by up to 6 levels)."""
    import tensorflow as tf

    return tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE")


def image_size_problem(path: str | os.PathLike, max_pixels: int | None = None) -> str | None:
    """Why ``path`` is too large to decode safely, read from its header alone; else ``None``.

    ``max_pixels`` defaults to [`MAX_IMAGE_PIXELS`][catdog.data.images.MAX_IMAGE_PIXELS]. Files
    that Pillow cannot identify are left to the decoder, which names them if they fail.

    Examples:
        ```python
        image_size_problem("huge.png")
        # '20000x20000 = 400,000,000 pixels, over the limit of 89,478,485 pixels ...'
        ```
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if not limit:
        return None
    from PIL import Image

    too_large = (
        f"over the limit of {limit:,} pixels (catdog.data.images.MAX_IMAGE_PIXELS): resize the "
        "image, or raise the limit if you trust the file"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return f"far more pixels than Pillow will open, {too_large}"
    except Exception:  # not identified by Pillow: the decoder decides
        return None
    if width * height > limit:
        return f"{width}x{height} = {width * height:,} pixels, {too_large}"
    return None


PREDICT_BATCH_SIZE = 32
"""Images per batch when predicting: memory depends on it, never on the number of images."""


UNREADABLE = "not a readable image (BMP, GIF, JPEG, PNG or WebP expected)"
"""Why a file that does not decode was not read (an [`ImageBatch`][catdog.data.images.ImageBatch]'s
``errors``, a prediction's ``error``)."""

GONE = "no longer exists (removed since it was checked)"
"""Why a file removed while it waited for its batch was not read."""


@dataclass
class ImageBatch:
    """Image files read together by [`read_image_batches`][catdog.data.images.read_image_batches].

    ``paths`` are the files in order; ``pixels`` is a float32 ``(k, h, w, 3)`` 0..255 array of
    those that decoded, in order; ``errors`` holds, for each path, ``None`` where it decoded,
    else why not (``UNREADABLE`` or ``GONE``, without the path).
    """

    paths: list[str]
    pixels: np.ndarray
    errors: list[str | None]

    @property
    def decoded(self) -> list[str]:
        """The paths whose pixels are in ``pixels``, in order."""
        return [p for p, error in zip(self.paths, self.errors, strict=True) if error is None]


def _check_image_file(path: str) -> None:
    """Raise the error that names ``path`` if it is missing or over the pixel limit."""
    if not Path(path).is_file():
        raise InputFileNotFoundError(f"Image file {path!r} does not exist.")
    problem = image_size_problem(path)
    if problem:
        raise InvalidArgumentError(f"{path!r} is too large to read: {problem}.")


DECODERS = ("tensorflow", "pillow")
"""Who decodes image files for [`read_image_batches`][catdog.data.images.read_image_batches]:
TensorFlow ([`decode_image`][catdog.data.images.decode_image]), or Pillow
([`pillow_pixels`][catdog.data.pillow_decode.pillow_pixels]: the same pixels, without
importing TensorFlow)."""


def _decode_or_reason(
    path: str, image_size: tuple[int, int], decoder: str = "tensorflow"
) -> np.ndarray | str:
    """One checked image file's ``uint8`` pixels, or why it could not be read."""
    if decoder == "pillow":
        return _pillow_or_reason(path, image_size)
    import tensorflow as tf

    try:
        return decode_image(tf.io.read_file(path), image_size).numpy()
    except tf.errors.NotFoundError:  # removed since it was checked
        return GONE
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return UNREADABLE


def _pillow_or_reason(path: str, image_size: tuple[int, int]) -> np.ndarray | str:
    """One checked image file's ``uint8`` pixels decoded by Pillow, or why not."""
    from catdog.data.pillow_decode import pillow_pixels

    try:
        return pillow_pixels(path, image_size)
    except FileNotFoundError:  # removed since it was checked
        return GONE
    except Exception:  # Pillow raises many types for files it cannot decode
        return UNREADABLE


def _unread_error(path: str, reason: str) -> InputFileNotFoundError | InvalidArgumentError:
    """The error that names ``path``, which could not be read for ``reason``."""
    if reason == GONE:
        return InputFileNotFoundError(f"Image file {path!r} does not exist.")
    return InvalidArgumentError(f"{path!r} is {reason}.")


def image_batches(
    paths: Sequence[str | os.PathLike],
    image_size: tuple[int, int],
    batch_size: int = PREDICT_BATCH_SIZE,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Read image files in order as ``(paths, pixels)`` chunks of at most ``batch_size``.

    ``pixels`` is a float32 ``(n, h, w, 3)`` 0..255 array, decoded by
    [`decode_image`][catdog.data.images.decode_image]. Every file is checked first (it exists,
    and its header is within [`MAX_IMAGE_PIXELS`][catdog.data.images.MAX_IMAGE_PIXELS]), so
    this raises before any work, naming the file; a file that does not decode raises when its
    chunk is reached, named too (to read on past such files, use
    [`read_image_batches`][catdog.data.images.read_image_batches]). More than one batch of
    files is decoded by a ``tf.data`` pipeline, in parallel and ahead of the consumer: memory
    depends on ``batch_size``, never on the number of files.

    Examples:
        ```python
        for names, pixels in image_batches(paths, (160, 160)):
            probabilities = predictor(pixels)
        ```
    """
    return _all_or_raise(read_image_batches(paths, image_size, batch_size))


def _all_or_raise(batches: Iterator[ImageBatch]) -> Iterator[tuple[list[str], np.ndarray]]:
    for batch in batches:
        for path, reason in zip(batch.paths, batch.errors, strict=True):
            if reason is not None:
                raise _unread_error(path, reason)
        yield batch.paths, batch.pixels


def read_image_batches(
    paths: Sequence[str | os.PathLike],
    image_size: tuple[int, int],
    batch_size: int = PREDICT_BATCH_SIZE,
    *,
    decoder: str = "tensorflow",
) -> Iterator[ImageBatch]:
    """Read image files in order as [`ImageBatch`][catdog.data.images.ImageBatch]es of at most
    ``batch_size`` decoded images; a file that does not decode (truncated, not an image) does
    not stop the reading: its batch says why, in its place.

    As [`image_batches`][catdog.data.images.image_batches]: every file is checked first (it
    exists, its header is within the pixel limit), raising before any work and naming the
    file; files are decoded in parallel, ahead of the consumer; memory depends on
    ``batch_size``, never on the number of files. ``decoder="pillow"`` decodes with Pillow
    on threads, without importing TensorFlow (see [`DECODERS`][catdog.data.images.DECODERS]).

    Examples:
        ```python
        for batch in read_image_batches(paths, (160, 160)):
            probabilities = predictor(batch.pixels)  # one row per path of batch.decoded
        ```
    """
    check_int("batch_size", batch_size)
    check_choice("decoder", decoder, DECODERS)
    names = [str(p) for p in paths]
    image_size = (int(image_size[0]), int(image_size[1]))
    for name in names:  # headers only: cheap, and nothing is decoded before all pass
        _check_image_file(name)
    if len(names) <= batch_size:  # one batch: no pipeline to build (faster for a few files)
        return iter([_eager_batch(names, image_size, decoder)] if names else [])
    if decoder == "pillow":
        return _threaded_batches(names, image_size, batch_size)
    return _pipeline_batches(names, image_size, batch_size)


def _eager_batch(
    names: list[str], image_size: tuple[int, int], decoder: str = "tensorflow"
) -> ImageBatch:
    """The batch of ``names``, decoded one at a time."""
    decoded = [_decode_or_reason(n, image_size, decoder) for n in names]
    return _batch(names, decoded, image_size)


def _threaded_batches(
    names: list[str], image_size: tuple[int, int], batch_size: int
) -> Iterator[ImageBatch]:
    """Batches of ``names`` decoded by Pillow on a few threads (Pillow releases the GIL while it
    decodes), the next batch decoded while the consumer runs this one."""
    from concurrent.futures import ThreadPoolExecutor

    starts = range(0, len(names), batch_size)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:

        def submit(start: int) -> list:
            chunk = names[start : start + batch_size]
            return [pool.submit(_pillow_or_reason, n, image_size) for n in chunk]

        pending = submit(starts[0])
        for start in starts:
            futures, pending = (
                pending,
                (submit(start + batch_size) if start + batch_size < len(names) else None),
            )
            decoded = [future.result() for future in futures]
            yield _batch(names[start : start + batch_size], decoded, image_size)


def _batch(names: list[str], decoded: list, image_size: tuple[int, int]) -> ImageBatch:
    """The batch of ``names`` from each one's pixels or reason (a string)."""
    pixels = [d for d in decoded if not isinstance(d, str)]
    array = np.stack(pixels) if pixels else np.zeros((0, *image_size, 3), np.uint8)
    errors = [d if isinstance(d, str) else None for d in decoded]
    return ImageBatch(names, array.astype(np.float32), errors)


def _pipeline_batches(
    names: list[str], image_size: tuple[int, int], batch_size: int
) -> Iterator[ImageBatch]:
    import tensorflow as tf

    def decode(index, path):
        return index, decode_image(tf.io.read_file(path), image_size)

    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(names)), tf.constant(names, tf.string)))
        .map(
            tf.autograph.experimental.do_not_convert(decode),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .ignore_errors()  # a file that does not decode is left out: its index is missing
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    start = 0
    for indices, pixels in dataset:
        indices = indices.numpy().tolist()
        end = indices[-1] + 1
        if len(indices) == end - start:  # every file from start on decoded
            yield ImageBatch(
                names[start:end], pixels.numpy().astype(np.float32), [None] * len(indices)
            )
        else:  # the missing ones decoded again, one at a time, to say why
            got = dict(zip(indices, pixels.numpy(), strict=True))
            decoded = [
                got[i] if i in got else _decode_or_reason(names[i], image_size)
                for i in range(start, end)
            ]
            yield _batch(names[start:end], decoded, image_size)
        start = end
    if start < len(names):  # the last files did not decode
        yield _eager_batch(names[start:], image_size)


def load_images(paths: Sequence[str | os.PathLike], image_size: tuple[int, int]) -> np.ndarray:
    """Read image files of any size and format into a float32 ``(n, h, w, 3)`` 0..255 array.

    Uses [`decode_image`][catdog.data.images.decode_image], as the training pipeline does.
    Raises a clear error naming a missing file, one that is not an image, or one over
    [`MAX_IMAGE_PIXELS`][catdog.data.images.MAX_IMAGE_PIXELS] (checked from its header, before
    any pixel is decoded). Holds every image at once: for many files, iterate
    [`image_batches`][catdog.data.images.image_batches] instead.

    Examples:
        ```python
        load_images(["cat.jpg"], (160, 160)).shape
        # (1, 160, 160, 3)
        ```
    """
    chunks = [pixels for _, pixels in image_batches(paths, image_size)]
    if not chunks:
        return np.zeros((0, *image_size, 3), np.float32)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def run_in_batches(run, images, input_shape: tuple, batch_size: int, classes: int) -> np.ndarray:
    """``run`` on ``images`` (one image or an ``(n, *input_shape)`` array) ``batch_size``
    images at a time, each batch cast to float32 on its own; the ``(n, classes)`` outputs
    concatenated.

    Args:
        run (Callable): a function from a float32 batch ``(k, *input_shape)`` to its
            ``(k, classes)`` outputs.
        images (np.ndarray): one image ``input_shape`` or an array ``(n, *input_shape)``.
        input_shape: the shape of one image, as ``run`` expects it.
        batch_size: images per call of ``run``, a positive integer.
        classes: outputs per image (the width of the empty result for no image).
    """
    check_int("batch_size", batch_size)
    array = images if isinstance(images, np.ndarray) else np.asarray(images, dtype=np.float32)
    if array.ndim == len(input_shape):
        array = array[None]
    if array.shape[1:] != tuple(input_shape):
        raise InvalidArgumentError(
            f"images must have shape (n, {', '.join(map(str, input_shape))}), got {array.shape}."
        )
    outputs = [
        run(np.asarray(array[start : start + batch_size], dtype=np.float32))
        for start in range(0, len(array), batch_size)
    ]
    if not outputs:
        return np.zeros((0, classes), np.float32)
    return np.concatenate(outputs) if len(outputs) != 1 else outputs[0]
