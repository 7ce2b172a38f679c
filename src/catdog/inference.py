"""Prediction in one place: reading image files, the inference-time model, fast predictions.

- [`decode_image`][catdog.inference.decode_image] turns encoded image bytes into pixels; the
  training pipeline, [`load_images`][catdog.inference.load_images] and the exported
  SavedModel's bytes signature all use it, so they see exactly the same pixels.
- [`inference_model`][catdog.inference.inference_model] is a model without its augmentation.
- [`Predictor`][catdog.inference.Predictor] traces that model once and runs batches of any size
  directly (``model.predict`` builds a data pipeline and a progress bar on every call, which
  dominates for a handful of images); [`predict`][catdog.inference.predict] names the classes.

TensorFlow and Keras are imported on first use: the data pipeline imports this module too.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog.errors import InputFileNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

MAX_IMAGE_PIXELS: int | None = 89_478_485
"""Images with more pixels are skipped in datasets and refused by ``predict``.

Pillow's decompression-bomb limit. Set it to ``None`` to lift the limit, as with Pillow's own
``Image.MAX_IMAGE_PIXELS``.
"""

_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------- reading images
def decode_image(data: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes (BMP, GIF, JPEG, PNG, WebP; any size) to ``image_size`` RGB pixels.

    Returns a ``uint8`` tensor ``(height, width, 3)``: decoded (large JPEGs straight at 1/2,
    1/4 or 1/8 scale by libjpeg when that still leaves ``image_size`` pixels), resized
    bilinearly as Keras' loader does, rounded. Grayscale, RGBA, CMYK and GIF (first frame)
    become RGB. A graph function: usable inside ``tf.data`` and exported signatures.

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
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )
    image = tf.image.resize(image, image_size)  # bilinear, as Keras' loader
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    image.set_shape((height, width, 3))
    return image


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


def load_images(paths: Sequence[str | os.PathLike], image_size: tuple[int, int]) -> np.ndarray:
    """Read image files of any size and format into a float32 ``(n, h, w, 3)`` 0..255 array.

    Uses [`decode_image`][catdog.inference.decode_image], as the training pipeline does.
    Raises a clear error naming a missing file, one that is not an image, or one over
    [`MAX_IMAGE_PIXELS`][catdog.inference.MAX_IMAGE_PIXELS] (checked from its header, before
    any pixel is decoded).

    Examples:
        ```python
        load_images(["cat.jpg"], (160, 160)).shape
        # (1, 160, 160, 3)
        ```
    """
    import tensorflow as tf

    images = []
    for path in paths:
        if not Path(path).is_file():
            raise InputFileNotFoundError(f"Image file {str(path)!r} does not exist.")
        problem = image_size_problem(path)
        if problem:
            raise InvalidArgumentError(f"{str(path)!r} is too large to read: {problem}.")
        try:
            image = decode_image(tf.io.read_file(str(path)), tuple(image_size))
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            raise InvalidArgumentError(
                f"{str(path)!r} is not a readable image (BMP, GIF, JPEG, PNG or WebP expected)."
            ) from error
        images.append(image.numpy())
    return np.stack(images).astype(np.float32)


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


class Predictor:
    """Class probabilities from a model, fast for small batches.

    Examples:
        ```python
        predictor = Predictor(model)
        predictor(images).shape
        # (1, 2)
        ```
    """

    def __init__(self, model: keras.Model, *, jit_compile: bool = False):
        import tensorflow as tf

        from catdog.models import outputs_logits

        self.model = model
        self.input_shape = tuple(model.input_shape[1:])
        without_augmentation = inference_model(model)
        logits = outputs_logits(model)

        def run(images):
            out = tf.cast(without_augmentation(images, training=False), tf.float32)
            return tf.nn.softmax(out) if logits else out

        spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        self._run = tf.function(run, input_signature=[spec], jit_compile=jit_compile)

    def __call__(self, images) -> np.ndarray:
        array = np.asarray(images, dtype=np.float32)
        if array.ndim == len(self.input_shape):
            array = array[None]
        if array.shape[1:] != self.input_shape:
            raise InvalidArgumentError(
                f"images must have shape (n, {', '.join(map(str, self.input_shape))}), "
                f"got {array.shape}."
            )
        return self._run(array).numpy()


def predictor_for(model: keras.Model) -> Predictor:
    """The cached [`Predictor`][catdog.inference.Predictor] of ``model``, made on first use."""
    predictor = _PREDICTORS.get(model)
    if predictor is None:
        predictor = _PREDICTORS[model] = Predictor(model)
    return predictor


def predict_probabilities(model: keras.Model, images) -> np.ndarray:
    """Class probabilities for an image array ``(n, h, w, 3)``, in inference mode.

    Uses the model's cached [`Predictor`][catdog.inference.Predictor]; logit models get a
    softmax.

    Examples:
        ```python
        predict_probabilities(model, images).shape
        # (32, 2)
        ```
    """
    return predictor_for(model)(images).astype(np.float64)


# ----------------------------------------------------------------------------- predictions
@dataclass
class Prediction:
    """The most likely class of one image, its probability, and every class's probability."""

    path: str
    class_name: str
    probability: float
    probabilities: dict[str, float]


def labels_path(path: str | os.PathLike) -> Path:
    """The labels file beside an exported file: ``model.tflite`` -> ``model.labels.txt``.

    Examples:
        >>> str(labels_path("out/model.tflite"))
        'out/model.labels.txt'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.labels.txt")


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
    beside the file ([`labels_path`][catdog.inference.labels_path]). Any batch size works.

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
        labels = labels_path(path)
        names = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else None
        self.class_names = [n for n in names if n] if names else None

    def __call__(self, images) -> np.ndarray:
        array = np.asarray(images, dtype=np.float32)
        if array.shape[1:] != self.input_shape[1:]:
            raise InvalidArgumentError(
                f"images must have shape (n, {', '.join(map(str, self.input_shape[1:]))}), "
                f"got {array.shape}."
            )
        interpreter = self._interpreter
        interpreter.resize_tensor_input(self._input["index"], array.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(self._input["index"], array)
        interpreter.invoke()
        return interpreter.get_tensor(self._output["index"]).astype(np.float64)


def predict(
    model: keras.Model | LiteRTModel,
    images_or_paths,
    class_names: Sequence[str] | None = None,
) -> list[Prediction]:
    """Predict the class of image files (any size/format) or of an image array.

    Returns one [`Prediction`][catdog.inference.Prediction] per image, with the most likely
    class name and its probability. Classes are named by ``class_names``, else by the names the
    model carries ([`class_names_of`][catdog.models.class_names_of]), else ``class_0``,
    ``class_1``...

    Examples:
        ```python
        for p in predict(model, ["cat.jpg", "dog.png"]):
            print(p.path, p.class_name, round(p.probability, 3))
        ```
    """
    from catdog.models import class_names_of

    height, width = model.input_shape[1:3]
    known = model.class_names if isinstance(model, LiteRTModel) else class_names_of(model)
    if isinstance(images_or_paths, np.ndarray):
        array, names = images_or_paths.astype(np.float32), None
        if array.ndim == 3:
            array = array[None]
        if array.shape[1:] != (height, width, 3):
            raise InvalidArgumentError(
                f"images must have shape (n, {height}, {width}, 3), got {array.shape}."
            )
    else:
        names = [str(p) for p in images_or_paths]
        array = load_images(names, (height, width))
    if isinstance(model, LiteRTModel):
        probabilities = model(array)
    else:
        probabilities = predict_probabilities(model, array)
    return named_predictions(probabilities, class_names or known, names)


def named_predictions(
    probabilities: np.ndarray, class_names: Sequence[str] | None, paths: Sequence[str] | None
) -> list[Prediction]:
    """One [`Prediction`][catdog.inference.Prediction] per row of ``probabilities``."""
    count = probabilities.shape[1]
    class_names = list(class_names or [f"class_{i}" for i in range(count)])
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
