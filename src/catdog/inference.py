"""Prediction in one place: reading image files, the inference-time model, fast predictions.

- [`decode_image`][catdog.inference.decode_image] turns encoded image bytes into pixels; the
  training pipeline, [`load_images`][catdog.inference.load_images] and the exported
  SavedModel's bytes signature all use it, so they see exactly the same pixels.
- [`inference_model`][catdog.inference.inference_model] is a model without its augmentation.
- [`Predictor`][catdog.inference.Predictor] runs that model on batches of any size, traced
  once by TensorFlow or converted once to LiteRT (``engine=``; ``model.predict`` builds a
  data pipeline and a progress bar on every call, which dominates for a handful of images);
  [`predict`][catdog.inference.predict] names the classes.

TensorFlow and Keras are imported on first use: the data pipeline imports this module too.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

MAX_IMAGE_PIXELS: int | None = 89_478_485
"""Images with more pixels are skipped in datasets and refused by ``predict``.

Pillow's decompression-bomb limit. Set it to ``None`` to lift the limit, as with Pillow's own
``Image.MAX_IMAGE_PIXELS``.
"""

_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
logger = logging.getLogger("catdog")


# ----------------------------------------------------------------------------- reading images
def decode_image(data: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes (BMP, GIF, JPEG, PNG, WebP; any size) to ``image_size`` RGB pixels.

    Returns a ``uint8`` tensor ``(height, width, 3)``: decoded (large JPEGs straight at 1/2,
    1/4 or 1/8 scale by libjpeg when that still leaves ``image_size`` pixels), resized
    bilinearly as Keras' loader does, rounded. Grayscale, RGBA, CMYK and GIF (first frame)
    become RGB; of an animated GIF only the first frame is read (see
    [`first_gif_frame`][catdog.inference.first_gif_frame]), so its memory does not grow with
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
            [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r) for r in (1, 2, 4, 8)],
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


_GIF_RUN = 256  # sub-blocks of one size that one step of the GIF walk skips
_GIF_STEPS = 10_000  # steps before a GIF is cut where the walk stands (only crafted files)


@functools.cache
def _gif_trimmer():
    """The graph function behind [`first_gif_frame`][catdog.inference.first_gif_frame],
    traced once. One step skips a block header or a run of up to ``_GIF_RUN`` sub-blocks of
    the same size (encoders write 255-byte sub-blocks), so a frame of megabytes takes tens of
    steps; after ``_GIF_STEPS`` steps the file is cut where the walk stands."""
    import tensorflow as tf

    def color_table(flags):  # bytes of the color table that a packed-fields byte announces
        has_table = tf.bitwise.bitwise_and(flags, 0x80) > 0
        return tf.where(has_table, 3 * tf.bitwise.left_shift(2, flags % 8), 0)

    @tf.function(input_signature=[tf.TensorSpec((), tf.string)], autograph=False)
    def trim(data):
        raw = tf.io.decode_raw(data, tf.uint8)
        size = tf.size(raw)

        def at(i):  # the bytes at positions i, -1 past the end
            byte = tf.cast(tf.gather(raw, tf.clip_by_value(i, 0, size - 1)), tf.int32)
            return tf.where(i < size, byte, -1)

        # states: 0 at a block, 1 in an extension's sub-blocks, 2 in the first image's,
        # 3 after the first image, 4 not a GIF as expected (the decoder gets it all)
        def step(pos, state):
            b = at(pos)
            if_block = (
                tf.where(b == 0x21, pos + 2, pos + 11 + color_table(at(pos + 9))),
                tf.where(b == 0x21, 1, tf.where(b == 0x2C, 2, 4)),
            )  # extension: introducer, label; image: descriptor, color table, code size
            run = at(pos + (b + 1) * tf.range(_GIF_RUN)) == b  # equal sub-blocks from pos
            skipped = tf.argmin(tf.concat([tf.cast(run, tf.int32), [0]], 0), output_type=tf.int32)
            if_sub_blocks = (
                tf.where(b > 0, pos + (b + 1) * skipped, pos + 1),
                tf.where(b < 0, 4, tf.where(b > 0, state, tf.where(state == 1, 0, 3))),
            )
            return (
                tf.where(state == 0, if_block[0], if_sub_blocks[0]),
                tf.where(state == 0, if_block[1], if_sub_blocks[1]),
            )

        start = 13 + color_table(at(10))  # header, screen descriptor, global color table
        pos, state = tf.while_loop(
            lambda _pos, state: state < 3,
            step,
            (start, tf.constant(0)),
            maximum_iterations=_GIF_STEPS,
        )
        cut = tf.strings.substr(data, 0, tf.minimum(pos, size))
        return tf.switch_case(
            tf.minimum(state, 3),
            [
                lambda: cut + b"\x00\x3b",  # a crafted walk: its frame ends here
                lambda: cut + b"\x00\x3b",
                lambda: cut + b"\x00\x3b",
                lambda: tf.where(state == 3, cut + b"\x3b", data),  # and the trailer
            ],
        )

    return trim


def first_gif_frame(data: tf.Tensor) -> tf.Tensor:
    """Encoded GIF bytes cut after their first frame; other bytes unchanged.

    TensorFlow's GIF decoder reads every frame into memory even when it returns the first
    only: a few megabytes of animation (2,000 frames of 1000x1000) took 2 GB. This follows
    the file's blocks (without decoding pixels) to the end of the first frame and ends the
    file there, so decoding costs one frame. Files it cannot follow are returned whole.

    Examples:
        ```python
        tf.io.decode_gif(first_gif_frame(tf.io.read_file("animated.gif"))).shape[0]
        # 1
        ```
    """
    import tensorflow as tf

    data = tf.convert_to_tensor(data, tf.string)
    is_gif = tf.strings.substr(data, 0, 3) == b"GIF"
    return tf.cond(is_gif, lambda: _gif_trimmer()(data), lambda: data)


def image_size_problem(path: str | os.PathLike, max_pixels: int | None = None) -> str | None:
    """Why ``path`` is too large to decode safely, read from its header alone; else ``None``.

    ``max_pixels`` defaults to [`MAX_IMAGE_PIXELS`][catdog.inference.MAX_IMAGE_PIXELS]. Files
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
        f"over the limit of {limit:,} pixels (catdog.inference.MAX_IMAGE_PIXELS): resize the "
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


def _check_image_file(path: str) -> None:
    """Raise the error that names ``path`` if it is missing or over the pixel limit."""
    if not Path(path).is_file():
        raise InputFileNotFoundError(f"Image file {path!r} does not exist.")
    problem = image_size_problem(path)
    if problem:
        raise InvalidArgumentError(f"{path!r} is too large to read: {problem}.")


def _decode_file(path: str, image_size: tuple[int, int]) -> np.ndarray:
    """One checked image file's ``uint8`` pixels; the error names the file."""
    import tensorflow as tf

    try:
        return decode_image(tf.io.read_file(path), image_size).numpy()
    except tf.errors.NotFoundError as error:  # removed since it was checked
        raise InputFileNotFoundError(f"Image file {path!r} does not exist.") from error
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise InvalidArgumentError(
            f"{path!r} is not a readable image (BMP, GIF, JPEG, PNG or WebP expected)."
        ) from error


def image_batches(
    paths: Sequence[str | os.PathLike],
    image_size: tuple[int, int],
    batch_size: int = PREDICT_BATCH_SIZE,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Read image files in order as ``(paths, pixels)`` chunks of at most ``batch_size``.

    ``pixels`` is a float32 ``(n, h, w, 3)`` 0..255 array, decoded by
    [`decode_image`][catdog.inference.decode_image]. Every file is checked first (it exists,
    and its header is within [`MAX_IMAGE_PIXELS`][catdog.inference.MAX_IMAGE_PIXELS]), so
    this raises before any work, naming the file; a file that does not decode raises when its
    chunk is reached, named too. More than one batch of files is decoded by a ``tf.data``
    pipeline, in parallel and ahead of the consumer: memory depends on ``batch_size``, never
    on the number of files.

    Examples:
        ```python
        for names, pixels in image_batches(paths, (160, 160)):
            probabilities = predictor(pixels)
        ```
    """
    from catdog._rules import check_int

    check_int("batch_size", batch_size)
    names = [str(p) for p in paths]
    image_size = (int(image_size[0]), int(image_size[1]))
    for name in names:  # headers only: cheap, and nothing is decoded before all pass
        _check_image_file(name)
    if len(names) <= batch_size:  # one batch: no pipeline to build (faster for a few files)
        return iter([(names, _stack(names, image_size))] if names else [])
    return _pipeline_batches(names, image_size, batch_size)


def _stack(names: list[str], image_size: tuple[int, int]) -> np.ndarray:
    return np.stack([_decode_file(n, image_size) for n in names]).astype(np.float32)


def _pipeline_batches(
    names: list[str], image_size: tuple[int, int], batch_size: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    import tensorflow as tf

    def decode(path):
        return decode_image(tf.io.read_file(path), image_size)

    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(names, tf.string))
        .map(
            tf.autograph.experimental.do_not_convert(decode),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    batches = iter(dataset)
    for start in range(0, len(names), batch_size):
        chunk = names[start : start + batch_size]
        try:
            pixels = next(batches)
        except tf.errors.OpError as error:  # name the file: decode the chunk's one by one
            _stack(chunk, image_size)
            raise InvalidArgumentError(
                f"Could not read the images {chunk[0]!r} to {chunk[-1]!r}: "
                f"{error.message.strip().splitlines()[0][:200]}"
            ) from error
        yield chunk, pixels.numpy().astype(np.float32)


def load_images(paths: Sequence[str | os.PathLike], image_size: tuple[int, int]) -> np.ndarray:
    """Read image files of any size and format into a float32 ``(n, h, w, 3)`` 0..255 array.

    Uses [`decode_image`][catdog.inference.decode_image], as the training pipeline does.
    Raises a clear error naming a missing file, one that is not an image, or one over
    [`MAX_IMAGE_PIXELS`][catdog.inference.MAX_IMAGE_PIXELS] (checked from its header, before
    any pixel is decoded). Holds every image at once: for many files, iterate
    [`image_batches`][catdog.inference.image_batches] instead.

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


def _in_batches(run, images, input_shape: tuple, batch_size: int, classes: int) -> np.ndarray:
    """``run`` on ``images`` (one image or an ``(n, *input_shape)`` array) ``batch_size``
    images at a time, each batch cast to float32 on its own; the ``(n, classes)`` outputs
    concatenated."""
    from catdog._rules import check_int

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


# ----------------------------------------------------------------------------- the model
def inference_model(model: keras.Model) -> keras.Model:
    """Return a model that shares ``model``'s layers and weights but has no augmentation.

    Augmentation layers pass images through unchanged at inference, yet their random ops stay
    in traced graphs; dropping them makes exports portable (TFLite has no such ops) and
    inference faster. A catdog model drops the layers it lists as its ``augmentation``
    (see [`ImageClassifier`][catdog.models.ImageClassifier]) and keeps its class names; another
    ``keras.Sequential`` drops the layers that only augment in training (``RandomCrop``, which
    crops at inference, stays). Other models are returned unchanged.

    Examples:
        >>> from catdog.models import build_augmented_model
        >>> [type(l).__name__ for l in inference_model(build_augmented_model()).layers][:2]
        ['Conv2D', 'MaxPooling2D']
    """
    import keras

    from catdog.models import ImageClassifier, is_augmentation_layer

    if not isinstance(model, keras.Sequential):
        return model
    if isinstance(model, ImageClassifier):
        dropped = set(model.augmentation)
        kept = [layer for layer in model.layers if layer.name not in dropped]
    else:
        kept = [layer for layer in model.layers if not is_augmentation_layer(layer)]
    if len(kept) == len(model.layers):
        return model
    layer_list = [keras.Input(shape=model.input_shape[1:], name="image"), *kept]
    name = f"{model.name}_inference"
    if isinstance(model, ImageClassifier):
        return ImageClassifier(layer_list, name=name, class_names=model.class_names)
    return keras.Sequential(layer_list, name=name)


def probability_model(model: keras.Model) -> keras.Model:
    """The model without augmentation, ending in probabilities (a softmax after logits).

    What every export and the LiteRT engine run.

    Examples:
        >>> from catdog.models import build_baseline_model
        >>> probability_model(build_baseline_model(classifier_activation=None)).layers[-1].name
        'probabilities'
    """
    import keras

    from catdog.models import outputs_logits

    without_augmentation = inference_model(model)
    if not outputs_logits(model):
        return without_augmentation
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    outputs = keras.layers.Softmax(name="probabilities")(without_augmentation(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_probabilities")


def litert_flatbuffer(
    model: keras.Model, quantize: str | None = None, *, probabilities: bool = True
) -> bytes:
    """The model's inference-time form (probabilities out) converted to a LiteRT flatbuffer.

    ``quantize``: ``None`` (float32), ``"float16"`` or ``"dynamic"`` (int8 weights).
    ``probabilities=False`` converts ``model`` exactly as it is (a feature extractor).

    Examples:
        ```python
        Path("model.tflite").write_bytes(litert_flatbuffer(model))
        ```
    """
    import tempfile

    import tensorflow as tf

    converted = probability_model(model) if probabilities else model
    with tempfile.TemporaryDirectory() as tmp:
        converted.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights ("dynamic")
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def litert_cache_key(model: keras.Model, *, probabilities: bool = True) -> str:
    """A SHA-256 of the model's architecture, its weights and the converter's version.

    Layer and model names are replaced by their order of appearance: Keras numbers the names
    it makes up (``input_layer_3``), so the same model built twice hashes the same, while
    its wiring still counts.
    """
    import hashlib
    import json
    import re

    import tensorflow as tf

    text = json.dumps(
        {"model": model.get_config(), "input_shape": list(model.input_shape)},
        sort_keys=True,
        default=str,
    )
    order = {
        name: i for i, name in enumerate(dict.fromkeys(re.findall(r'"name": "([^"]*)"', text)))
    }
    text = re.sub(r'"([^"]*)"', lambda m: f'"#{order[m[1]]}"' if m[1] in order else m[0], text)
    digest = hashlib.sha256(f"{text}|tf {tf.__version__}|format 2|{probabilities}".encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def cached_litert_file(
    model: keras.Model,
    cache_dir: str | os.PathLike | None = None,
    *,
    probabilities: bool = True,
) -> Path:
    """The model converted for LiteRT, from the on-disk cache or converted into it.

    The file is named by [`litert_cache_key`][catdog.inference.litert_cache_key] (config and
    weights), written atomically under ``cache_dir`` (default: ``litert/`` in the Keras cache
    folder, ``$KERAS_HOME`` or ``~/.keras``, where catdog keeps its datasets) with its SHA-256
    beside it (``KEY.tflite.sha256``), while a lock keeps concurrent conversions of the same
    model from racing: converting once serves every later process. A cached file that does
    not match its SHA-256 (or, without one, that LiteRT cannot load) is converted again, with
    a warning naming it. A cache folder that cannot be written raises an
    [`OutputError`][catdog.errors.OutputError] naming it. ``probabilities`` is as in
    [`litert_flatbuffer`][catdog.inference.litert_flatbuffer].

    Examples:
        ```python
        path = cached_litert_file(model)  # seconds the first time, instant afterwards
        ```
    """
    from catdog.download import default_cache_dir
    from catdog.io import file_lock, sha256sum, write_atomic, write_text

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "litert"
    path = folder / f"{litert_cache_key(model, probabilities=probabilities)}.tflite"
    checksum = path.with_name(f"{path.name}.sha256")
    damage = _cache_damage(path, checksum)
    if damage is None:
        if not checksum.is_file():  # converted by an older catdog, and it loads: record it
            try:
                write_text(checksum, sha256sum(path) + "\n")
            except OSError:  # a read-only cache still serves its files
                pass
        return path
    problem = _cache_folder_problem(folder)
    if problem:
        found = "The" if damage == "missing" else f"{str(path)!r} is damaged ({damage}); the"
        raise OutputError(
            f"{found} LiteRT cache folder {str(folder)!r} cannot be written ({problem}). Set "
            "KERAS_HOME to a writable folder (the cache is KERAS_HOME/litert), or use "
            "engine='tensorflow'."
        )
    with file_lock(folder / f".{path.stem}.lock"):
        damage = _cache_damage(path, checksum)
        if damage is not None:
            if path.exists():
                logger.warning(
                    "The cached LiteRT file %s is damaged (%s); converting the model again.",
                    path,
                    damage,
                )
            flatbuffer = litert_flatbuffer(model, probabilities=probabilities)
            write_atomic(path, lambda out: out.write_bytes(flatbuffer))
            write_text(checksum, sha256sum(path) + "\n")
    return path


def _cache_damage(path: Path, checksum: Path) -> str | None:
    """Why the cached file ``path`` cannot be used (missing, damaged), or ``None``."""
    from catdog.io import sha256sum

    if not path.is_file():
        return "missing"
    try:
        expected = checksum.read_text(encoding="ascii").strip() if checksum.is_file() else ""
        if expected:
            if sha256sum(path) == expected:
                return None
            return f"its SHA-256 is not the one recorded in {checksum.name}"
    except (OSError, ValueError) as error:
        return f"it cannot be read: {error}"
    try:  # written before catdog recorded checksums: usable if LiteRT can load it
        _interpreter(path).allocate_tensors()
    except Exception as error:  # LiteRT raises ValueError and RuntimeError
        return f"LiteRT cannot load it: {_first_line(error)}"
    return None


def _cache_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold cached files (created if missing), or ``None``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return error.strerror or type(error).__name__
    if not os.access(folder, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, shortened at a word boundary to ``limit``."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0]
    return f"{cut} ..."


class Predictor:
    """Class probabilities from a model, fast for small batches, on a choice of engines.

    ``engine="tensorflow"`` (the default) traces the model once as a ``tf.function``: it
    always runs the model's current weights. ``engine="litert"`` converts the model's
    inference-time form to LiteRT once (cached on disk, see
    [`cached_litert_file`][catdog.inference.cached_litert_file]) and runs it with LiteRT's
    CPU kernels (XNNPACK): several times faster on a CPU, outputs equal within 1e-4. It runs
    the weights the model had when the ``Predictor`` was made: after changing them, make a
    new one. ``engine="auto"`` is ``"litert"`` where the conversion works and
    ``"tensorflow"`` (with a one-line notice) where it does not. ``engine`` says which one
    runs. Arrays of any length run ``batch_size`` images at a time, so memory does not grow
    with their length.

    Examples:
        ```python
        predictor = Predictor(model, engine="litert")
        predictor(images).shape
        # (1, 2)
        ```
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        engine: str = "tensorflow",
        jit_compile: bool = False,
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = PREDICT_BATCH_SIZE,
    ):
        from catdog._rules import ENGINES, check_int

        if engine not in ENGINES:
            raise InvalidArgumentError(f"engine must be one of {ENGINES}, got {engine!r}.")
        self.batch_size = check_int("batch_size", batch_size)
        self.model = model
        self.input_shape = tuple(model.input_shape[1:])
        self.engine, self._run = "tensorflow", None
        if engine != "tensorflow":
            self._run = self._litert(model, engine, cache_dir)
        if self._run is None:
            self._run = self._tensorflow(model, jit_compile)
        else:
            self.engine = "litert"

    @staticmethod
    def _tensorflow(model: keras.Model, jit_compile: bool):
        import tensorflow as tf

        from catdog.models import outputs_logits

        without_augmentation = inference_model(model)
        logits = outputs_logits(model)

        def run(images):
            out = tf.cast(without_augmentation(images, training=False), tf.float32)
            return tf.nn.softmax(out) if logits else out

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        function = tf.function(run, input_signature=[spec], jit_compile=jit_compile)
        return lambda array: function(array).numpy()

    @staticmethod
    def _litert(model: keras.Model, engine: str, cache_dir):
        try:
            return LiteRTModel(cached_litert_file(model, cache_dir))
        except OutputError as error:  # the cache folder, not the converter
            if engine == "litert":
                raise
            logger.warning("%s Predicting with TensorFlow.", error)
            return None
        except Exception as error:  # the converter raises many types
            if engine == "litert":
                raise InvalidArgumentError(
                    f"Could not convert {model.name!r} for LiteRT ({type(error).__name__}: "
                    f"{_first_line(error)}). Use engine='tensorflow'."
                ) from error
            logger.warning(
                "LiteRT could not convert %r (%s: %s); predicting with TensorFlow.",
                model.name,
                type(error).__name__,
                _first_line(error),
            )
            return None

    def __call__(self, images, *, batch_size: int | None = None) -> np.ndarray:
        """Probabilities ``(n, classes)`` of one image or an ``(n, h, w, 3)`` array, run
        ``batch_size`` (default: the predictor's) images at a time."""
        return _in_batches(
            self._run,
            images,
            self.input_shape,
            self.batch_size if batch_size is None else batch_size,
            self.model.output_shape[-1],
        )


def _weights_token(model: keras.Model) -> tuple:
    """Cheap evidence that the weights moved: the optimizer's step count and the output
    layer's weights (every kind of training, ``set_weights`` and ``load_weights`` change
    them; hashing every weight would cost more than a LiteRT prediction)."""
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    step = None if iterations is None else int(iterations.numpy())
    last = next((layer for layer in reversed(model.layers) if layer.weights), None)
    head = b"".join(np.asarray(w.numpy()).tobytes() for w in last.weights) if last else b""
    return step, head


def predictor_for(model: keras.Model, engine: str = "tensorflow") -> Predictor:
    """The cached [`Predictor`][catdog.inference.Predictor] of ``model`` on ``engine``.

    A LiteRT predictor is made again once the model's weights have moved on (its optimizer
    stepped or its output layer changed).
    """
    cached = _PREDICTORS.setdefault(model, {})
    step = _weights_token(model) if engine != "tensorflow" else None
    entry = cached.get(engine)
    if entry is None or entry[1] != step:
        entry = cached[engine] = (Predictor(model, engine=engine), step)
    return entry[0]


TTA_MODES = (None, "flip")
"""Test-time augmentation: none, or ``"flip"`` (the image and its mirror image, averaged)."""


def predict_probabilities(
    model: keras.Model,
    images,
    engine: str = "tensorflow",
    tta: str | None = None,
    *,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> np.ndarray:
    """Class probabilities for an image array ``(n, h, w, 3)``, in inference mode.

    Uses the model's cached [`Predictor`][catdog.inference.Predictor] on ``engine``; logit
    models get a softmax. ``tta="flip"`` averages the probabilities of each image and of its
    left-right mirror image (test-time augmentation: twice the compute). Runs ``batch_size``
    images at a time.

    Examples:
        ```python
        predict_probabilities(model, images, tta="flip").shape
        # (32, 2)
        ```
    """
    if tta not in TTA_MODES:
        raise InvalidArgumentError(f"tta must be one of {TTA_MODES}, got {tta!r}.")
    predictor = predictor_for(model, engine)

    def run(batch: np.ndarray) -> np.ndarray:
        probabilities = predictor(batch, batch_size=batch_size).astype(np.float64)
        if tta == "flip":
            mirrored = batch[..., ::-1, :]  # width is axis -2
            flipped = predictor(mirrored, batch_size=batch_size).astype(np.float64)
            probabilities = (probabilities + flipped) / 2
        return probabilities

    return _in_batches(
        run, images, predictor.input_shape, batch_size, model.output_shape[-1]
    ).astype(np.float64)


# ----------------------------------------------------------------------------- predictions
@dataclass
class Prediction:
    """The most likely class of one image, its probability, and every class's probability."""

    path: str
    class_name: str
    probability: float
    probabilities: dict[str, float]


def labels_path(path: str | os.PathLike) -> Path:
    """The labels file of an exported file: ``model.tflite`` -> ``model.tflite.labels.txt``.

    One labels file per exported file, so ``model.tflite`` and ``model.onnx`` never share
    one. Files exported by older catdog versions used ``model.labels.txt``, which
    [`exported_class_names`][catdog.inference.exported_class_names] still reads.

    Examples:
        >>> str(labels_path("out/model.tflite"))
        'out/model.tflite.labels.txt'
    """
    path = Path(path)
    return path.with_name(f"{path.name}.labels.txt")


def _old_labels_path(path: str | os.PathLike) -> Path:
    """Where older catdog versions wrote the labels: ``model.tflite`` -> ``model.labels.txt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.labels.txt")


ONNX_CLASS_NAMES_KEY = "class_names"
"""The ONNX ``metadata_props`` key under which catdog stores the class names (a JSON list)."""


def _exported_names(path: str | os.PathLike) -> tuple[list[str] | None, str | None]:
    """``(class names, where they were read)`` of an exported file, or ``(None, None)``."""
    import json

    path = Path(path)
    if path.suffix == ".onnx":
        try:
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            stored = {p.key: p.value for p in proto.metadata_props}.get(ONNX_CLASS_NAMES_KEY)
            names = json.loads(stored) if stored else None
        except Exception:  # no onnx package, or no (valid) names inside: try the labels file
            names = None
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return names, str(path)
    for labels in (labels_path(path), _old_labels_path(path)):
        if labels.is_file():
            lines = labels.read_text(encoding="utf-8").splitlines()
            names = [n for n in lines if n]
            if names:
                return names, str(labels)
    return None, None


def exported_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names of a ``.tflite`` or ``.onnx`` file exported by catdog, or ``None``.

    Read from inside an ``.onnx`` file (``metadata_props``, when the ``onnx`` package is
    installed), else from its labels file ([`labels_path`][catdog.inference.labels_path]),
    else from the ``NAME.labels.txt`` that older catdog versions wrote.

    Examples:
        ```python
        exported_class_names("model.tflite")
        # ['cats', 'dogs']
        ```
    """
    return _exported_names(path)[0]


def class_names_beside(model_path: str | os.PathLike) -> list[str] | None:
    """The names in ``class_names.json`` beside a model file (its run folder), or ``None``."""
    from catdog.io import read_json

    names = read_json(Path(model_path).with_name("class_names.json"))
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def numbered_class_names(count: int) -> list[str]:
    """``class_0``, ``class_1``...: the names of a model's outputs when nothing names them."""
    return [f"class_{i}" for i in range(count)]


def resolve_class_names(
    model: keras.Model | LiteRTModel,
    model_path: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """The names of ``model``'s outputs, by the one rule of predictions and exports.

    ``class_names`` when given; else the names the model carries (a catdog model's, or a
    [`LiteRTModel`][catdog.inference.LiteRTModel]'s labels); else ``class_names.json`` beside
    ``model_path`` (a run folder of an older catdog) when it names as many classes as the
    model has outputs; else ``class_0``, ``class_1``...

    Examples:
        >>> from catdog.models import build_baseline_model
        >>> resolve_class_names(build_baseline_model(input_shape=(32, 32, 3)))
        ['class_0', 'class_1']
    """
    from catdog.models import class_names_of

    count = int(model.output_shape[-1])
    if class_names is not None:
        names = list(class_names)
        if len(names) != count:
            raise InvalidArgumentError(
                f"The model predicts {count} classes but {len(names)} class names were given."
            )
        return names
    own = model.class_names if isinstance(model, LiteRTModel) else class_names_of(model)
    if own:
        return list(own)
    beside = class_names_beside(model_path) if model_path is not None else None
    if beside is not None:
        if len(beside) == count:
            return beside
        logger.warning(
            "%s lists %d class names but the model predicts %d classes; it is not this "
            "model's, so the classes are numbered.",
            Path(model_path).with_name("class_names.json"),
            len(beside),
            count,
        )
    return numbered_class_names(count)


def _interpreter(path: str | os.PathLike):
    """LiteRT's interpreter (``ai-edge-litert``) if installed, else TensorFlow's copy of it."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings():  # TF's copy warns, on every use, that it moves to LiteRT
        warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.lite")
        return Interpreter(model_path=str(path), num_threads=os.cpu_count())


class LiteRTModel:
    """A ``.tflite`` file as a classifier: its input shape, class names and probabilities.

    The class names come from the labels file that [`export`][catdog.saving.export] writes
    beside the file ([`exported_class_names`][catdog.inference.exported_class_names]); a
    labels file that names another number of classes than the file predicts is refused. Any
    batch size works.

    Examples:
        ```python
        model = LiteRTModel("model.tflite")
        predict(model, ["cat.jpg"])[0].class_name
        # 'cats'
        ```
    """

    def __init__(self, path: str | os.PathLike):
        if not Path(path).is_file():
            raise InputFileNotFoundError(f"Model file {str(path)!r} does not exist.")
        try:
            self._interpreter = _interpreter(path)
        except ValueError as error:
            raise InvalidArgumentError(f"{str(path)!r} is not a TFLite model: {error}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = (None, *(int(d) for d in self._input["shape"][1:]))
        self.output_shape = (None, int(self._output["shape"][-1]))
        self._shape = None
        names, source = _exported_names(path)
        if names is not None and len(names) != self.output_shape[-1]:
            raise InvalidArgumentError(
                f"{source!r} names {len(names)} classes but {str(path)!r} predicts "
                f"{self.output_shape[-1]}: it belongs to another model. Export the model "
                "again, or pass the class names."
            )
        self.class_names = names
        self.labels_source = source  # the file the names came from, for messages

    def __call__(self, images, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """Probabilities ``(n, classes)`` of an ``(n, h, w, 3)`` array, ``batch_size`` images
        at a time."""
        array = images if isinstance(images, np.ndarray) else np.asarray(images, np.float32)
        if array.ndim != len(self.input_shape):  # one image is not taken for a batch here
            raise InvalidArgumentError(
                f"images must have shape (n, {', '.join(map(str, self.input_shape[1:]))}), "
                f"got {array.shape}."
            )
        classes = int(self._output["shape"][-1])
        return _in_batches(self._invoke, array, self.input_shape[1:], batch_size, classes)

    def _invoke(self, array: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter
        if array.shape != self._shape:  # another batch size: resize, no reconversion
            interpreter.resize_tensor_input(self._input["index"], array.shape)
            interpreter.allocate_tensors()
            self._shape = array.shape
        interpreter.set_tensor(self._input["index"], array)
        interpreter.invoke()
        return interpreter.get_tensor(self._output["index"]).astype(np.float64)


def predict(
    model: keras.Model | LiteRTModel,
    images_or_paths,
    class_names: Sequence[str] | None = None,
    *,
    engine: str = "tensorflow",
    tta: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> list[Prediction]:
    """Predict the class of image files (any size/format) or of an image array.

    Returns one [`Prediction`][catdog.inference.Prediction] per image, with the most likely
    class name and its probability. Classes are named by ``class_names``, else by the names the
    model carries ([`resolve_class_names`][catdog.inference.resolve_class_names]), else ``class_0``,
    ``class_1``... ``engine`` (``"tensorflow"``, ``"litert"``, ``"auto"``) runs a Keras model
    as [`Predictor`][catdog.inference.Predictor] says; ``tta="flip"`` averages each image's
    prediction with its mirror image's (see
    [`predict_probabilities`][catdog.inference.predict_probabilities]). Images are read and
    run ``batch_size`` at a time ([`image_batches`][catdog.inference.image_batches]): memory
    does not grow with their number. No image gives an empty list.

    Examples:
        ```python
        for p in predict(model, ["cat.jpg", "dog.png"]):
            print(p.path, p.class_name, round(p.probability, 3))
        ```
    """
    height, width = model.input_shape[1:3]
    if isinstance(model, LiteRTModel):
        if tta is not None:
            raise InvalidArgumentError("tta needs a Keras model, not a LiteRT file.")

        def run(batch: np.ndarray) -> np.ndarray:
            return model(batch, batch_size=batch_size)
    else:

        def run(batch: np.ndarray) -> np.ndarray:
            return predict_probabilities(model, batch, engine, tta, batch_size=batch_size)

    if isinstance(images_or_paths, np.ndarray):
        names, array = None, images_or_paths
        if array.ndim == 3:
            array = array[None]
        if array.shape[1:] != (height, width, 3):
            raise InvalidArgumentError(
                f"images must have shape (n, {height}, {width}, 3), got {array.shape}."
            )
        probabilities = run(array) if len(array) else None
    else:
        names, chunks = [], []
        for chunk, pixels in image_batches(images_or_paths, (height, width), batch_size):
            names += chunk
            chunks.append(run(pixels))
        probabilities = np.concatenate(chunks) if chunks else None
    if probabilities is None:
        return []
    return named_predictions(
        probabilities, resolve_class_names(model, None, class_names or None), names
    )


def named_predictions(
    probabilities: np.ndarray, class_names: Sequence[str] | None, paths: Sequence[str] | None
) -> list[Prediction]:
    """One [`Prediction`][catdog.inference.Prediction] per row of ``probabilities``."""
    from catdog._rules import check_printable_class_names

    count = probabilities.shape[1]
    class_names = list(class_names or numbered_class_names(count))
    check_printable_class_names(class_names)
    if len(class_names) != count:
        raise InvalidArgumentError(
            f"The model predicts {count} classes but {len(class_names)} class names were given."
        )
    results = []
    for i, row in enumerate(probabilities):
        best = int(row.argmax())
        results.append(
            Prediction(
                path=paths[i] if paths else f"image_{i}",
                class_name=class_names[best],
                probability=float(row[best]),
                probabilities={n: float(p) for n, p in zip(class_names, row, strict=True)},
            )
        )
    return results
