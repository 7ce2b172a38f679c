"""Prediction: [`Predictor`][catdog.deploy.predict.Predictor] runs a model's inference graph on
batches of any size, traced once by TensorFlow or converted once to LiteRT (``engine=``);
[`predict`][catdog.deploy.predict.predict] reads image files in fixed-size batches and names
the classes. Memory depends on the batch size, never on the number of images."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import check_choice
from catdog.errors import InvalidArgumentError

if TYPE_CHECKING:
    import keras


from catdog._rules import ENGINES, check_int
from catdog.data.images import PREDICT_BATCH_SIZE, read_image_batches, run_in_batches
from catdog.deploy.labels import resolve_class_names
from catdog.deploy.litert import LiteRTModel, litert_model_or_none
from catdog.deploy.prediction import (  # noqa: F401 (Prediction and named_predictions' old home)
    Prediction,
    class_thresholds_of,
    named_predictions,
)

logger = logging.getLogger("catdog")


class Predictor:
    """Class probabilities from a model, fast for small batches, on a choice of engines.

    ``engine="tensorflow"`` (the default) traces the model once as a ``tf.function``: it
    always runs the model's current weights. ``engine="litert"`` converts the model's
    inference-time form to LiteRT once (cached on disk, see
    [`cached_litert_file`][catdog.deploy.litert.cached_litert_file]) and runs it with LiteRT's
    CPU kernels (XNNPACK): several times faster on a CPU, outputs equal within 1e-4. It runs
    the weights the model had when the ``Predictor`` was made: after changing them, make a
    new one. ``engine="auto"`` is ``"litert"`` where the conversion works and
    ``"tensorflow"`` (with a one-line notice) where it does not. ``engine`` says which one
    runs. It runs the model's layers as they were when it first ran: after changing them
    (``calibrate`` puts a layer in), make a new one. The ``Predictor`` is the caller's: keep
    it to predict many times (``predict`` and ``evaluate`` take one in place of the model),
    without tracing or converting the model again. Arrays of any length run ``batch_size``
    images at a time, so memory does not grow with their length.

    Args:
        model: the Keras model (run in inference mode, augmentation left out).
        engine: ``"tensorflow"``, ``"litert"`` or ``"auto"``.
        jit_compile: with ``"tensorflow"``, compile the traced function with XLA.
        cache_dir: with LiteRT, the folder of converted models (default: ``litert/`` in the
            Keras cache folder).
        batch_size: images run at a time, a positive integer.
        probabilities: ``False`` runs ``model`` exactly as it is, its outputs unchanged (a
            feature extractor, such as an
            [`embedding_model`][catdog.deploy.embeddings.embedding_model]); ``True`` (the
            default) runs the classifier's calibrated probabilities.

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
        probabilities: bool = True,
    ):
        check_choice("engine", engine, ENGINES)
        self.batch_size = check_int("batch_size", batch_size)
        self.model = model
        self.input_shape = tuple(model.input_shape[1:])
        self.classes = int(model.output_shape[-1])
        self.engine, self._run, lite = "tensorflow", None, None
        if engine != "tensorflow":
            lite = litert_model_or_none(model, engine, cache_dir, probabilities)
        if lite is None:
            self._run = self._tensorflow(model, jit_compile, probabilities)
            self.scored = probabilities and _unknown_threshold(model) is not None
        else:
            self.engine, self._run, self.scored = "litert", lite._invoke, lite.scored

    @staticmethod
    def _tensorflow(model: keras.Model, jit_compile: bool, probabilities: bool = True):
        import tensorflow as tf

        from catdog.models.confidence import confidence_outputs

        def run(images):
            if not probabilities:  # the model as it is (a feature extractor)
                return model(images, training=False)
            outputs = confidence_outputs(model, images)
            if "ood_score" not in outputs:
                return outputs["probabilities"]
            return tf.concat([outputs["probabilities"], outputs["ood_score"][:, None]], axis=1)

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        function = tf.function(run, input_signature=[spec], jit_compile=jit_compile)
        return lambda array: function(array).numpy()

    def __call__(self, images, *, batch_size: int | None = None) -> np.ndarray:
        """Probabilities ``(n, classes)`` of one image or an ``(n, h, w, 3)`` array, run
        ``batch_size`` (default: the predictor's) images at a time (calibrated, for a model
        calibrated by [`calibrate`][catdog.training.calibration.calibrate])."""
        return self.wide(images, batch_size=batch_size)[:, : self.classes]

    def scores(self, images, *, batch_size: int | None = None):
        """``(probabilities, ood scores)`` of the images; the scores are ``None`` for a model
        without an out-of-distribution score."""
        return split_scores(self.wide(images, batch_size=batch_size), self.classes)

    def wide(self, images, *, batch_size: int | None = None) -> np.ndarray:
        """The probabilities with the ood score as one more column, when the model has one."""
        return run_in_batches(
            self._run,
            images,
            self.input_shape,
            self.batch_size if batch_size is None else batch_size,
            self.classes + self.scored,
        )


def split_scores(wide: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(probabilities, scores or None)`` of an array whose extra column is the score."""
    return wide[:, :classes], (wide[:, classes] if wide.shape[1] > classes else None)


def as_predictor(model: keras.Model | Predictor, engine: str = "tensorflow") -> Predictor:
    """``model`` itself when it is a [`Predictor`][catdog.deploy.predict.Predictor] (the
    caller's, run on its own engine), else a new ``Predictor`` of the Keras model on ``engine``.

    Examples:
        ```python
        predictor = as_predictor(model, "litert")
        as_predictor(predictor) is predictor
        # True
        ```
    """
    return model if isinstance(model, Predictor) else Predictor(model, engine=engine)


TTA_MODES = (None, "flip")
"""Test-time augmentation: none, or ``"flip"`` (the image and its mirror image, averaged)."""


def _tta_runner(predictor: Predictor, tta: str | None, batch_size: int):
    """A function from a float32 batch to its float64 probabilities (and ood score, as one
    more column, for a model with one) on ``predictor``, the image's and its mirror image's
    probabilities averaged with ``tta="flip"`` (the score stays the image's own)."""
    check_choice("tta", tta, TTA_MODES)

    def run(batch: np.ndarray) -> np.ndarray:
        wide = predictor.wide(batch, batch_size=batch_size).astype(np.float64)
        if tta == "flip":  # the probabilities averaged; the score stays the image's own, as
            mirrored = batch[..., ::-1, :]  # its threshold was chosen (width is axis -2)
            flipped = predictor.wide(mirrored, batch_size=batch_size)[:, : predictor.classes]
            wide[:, : predictor.classes] = (wide[:, : predictor.classes] + flipped) / 2
        return wide

    return run


def predict_probabilities(
    model: keras.Model | Predictor,
    images,
    engine: str = "tensorflow",
    tta: str | None = None,
    *,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> np.ndarray:
    """Class probabilities for an image array ``(n, h, w, 3)``, in inference mode.

    Runs a new [`Predictor`][catdog.deploy.predict.Predictor] of the model on ``engine``, or
    the ``Predictor`` given as ``model`` (on its own engine: pass one to predict many arrays
    without tracing or converting the model again); logit models get a softmax. ``tta="flip"``
    averages the probabilities of each image and of its left-right mirror image (test-time
    augmentation: twice the compute). Runs ``batch_size`` images at a time.

    Args:
        model: the Keras model, or a ``Predictor`` of it.
        images (np.ndarray): an image array ``(n, h, w, 3)`` of 0..255 pixels.
        engine: ``"tensorflow"``, ``"litert"`` or ``"auto"`` (see ``Predictor``), for a Keras
            model.
        tta: ``"flip"`` for test-time augmentation, or ``None``.
        batch_size: images run at a time, a positive integer.

    Examples:
        ```python
        predict_probabilities(model, images, tta="flip").shape
        # (32, 2)
        ```
    """
    return predict_scores(model, images, engine, tta, batch_size=batch_size)[0]


def predict_scores(
    model: keras.Model | Predictor,
    images,
    engine: str = "tensorflow",
    tta: str | None = None,
    *,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(probabilities, ood scores)`` of an image array, as
    [`predict_probabilities`][catdog.deploy.predict.predict_probabilities] runs it; the scores
    (higher: less like the training images) are ``None`` for a model without one.

    Examples:
        ```python
        probs, scores = predict_scores(model, images)
        unknown = is_unknown(scores, unknown_threshold(model))
        ```
    """
    check_choice("tta", tta, TTA_MODES)
    predictor = as_predictor(model, engine)
    run = _tta_runner(predictor, tta, batch_size)
    width = predictor.classes + predictor.scored
    wide = run_in_batches(run, images, predictor.input_shape, batch_size, width)
    return split_scores(wide, predictor.classes)


# ----------------------------------------------------------------------------- predictions
def predict(
    model: keras.Model | LiteRTModel | Predictor,
    images_or_paths,
    class_names: Sequence[str] | None = None,
    *,
    engine: str = "tensorflow",
    tta: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> list[Prediction]:
    """Predict the class of image files (any size/format) or of an image array.

    Returns one [`Prediction`][catdog.deploy.prediction.Prediction] per image, with the most likely
    class name and its probability. Classes are named by ``class_names``, else by the names the
    model carries ([`resolve_class_names`][catdog.deploy.labels.resolve_class_names]), else
    ``class_0``,
    ``class_1``... ``engine`` (``"tensorflow"``, ``"litert"``, ``"auto"``) runs a Keras model
    as [`Predictor`][catdog.deploy.predict.Predictor] says, a new one each call; pass a
    ``Predictor`` of your own as ``model`` to predict many times without tracing or converting
    the model again (it runs on its own engine); ``tta="flip"`` averages each image's
    prediction with its mirror image's (see
    [`predict_probabilities`][catdog.deploy.predict.predict_probabilities]). Images are read and
    run ``batch_size`` at a time ([`read_image_batches`][catdog.data.images.read_image_batches]):
    memory does not grow with their number, but the list does (by a few hundred bytes an
    image); to handle each prediction as it comes, iterate
    [`iter_predictions`][catdog.deploy.predict.iter_predictions]. No image gives an empty list.

    A file that does not decode (truncated, not an image) does not stop the others, as in
    training: it is logged as skipped and its prediction says why in ``error`` (check it before
    ``class_name``, then ``""``). A missing file, or one over the pixel limit, is refused before
    any image is read, naming it.

    Args:
        model: a Keras model, a [`Predictor`][catdog.deploy.predict.Predictor] of one, or a
            [`LiteRTModel`][catdog.deploy.litert.LiteRTModel].
        images_or_paths (Sequence[str] | np.ndarray): image files, or an image array
            ``(n, h, w, 3)`` of 0..255 pixels.
        class_names: names of the classes, in output order; default: the model's own.
        engine: ``"tensorflow"``, ``"litert"`` or ``"auto"`` (for a Keras model).
        tta: ``"flip"`` for test-time augmentation, or ``None``.
        batch_size: images read and run at a time, a positive integer.

    Examples:
        ```python
        for p in predict(model, ["cat.jpg", "dog.png"]):
            print(p.path, p.error or f"{p.class_name} {p.probability:.3f}")
        ```
    """
    return list(
        iter_predictions(
            model, images_or_paths, class_names, engine=engine, tta=tta, batch_size=batch_size
        )
    )


def iter_predictions(
    model: keras.Model | LiteRTModel | Predictor,
    images_or_paths,
    class_names: Sequence[str] | None = None,
    *,
    engine: str = "tensorflow",
    tta: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
) -> Iterator[Prediction]:
    """[`predict`][catdog.deploy.predict.predict], one
    [`Prediction`][catdog.deploy.prediction.Prediction] at a time, as each batch is done.

    The arguments are ``predict``'s, checked (and the engine made, and every file's header
    checked) when this is called; images are read and run ``batch_size`` at a time as the
    iterator is consumed, files decoded in parallel while the model runs. Memory stays the
    same for any number of images. A file that does not decode gives a prediction whose
    ``error`` says why, and the iteration goes on.

    Examples:
        ```python
        with open("predictions.tsv", "w") as out:
            for p in iter_predictions(model, paths, engine="auto"):
                out.write(f"{p.path}\t{p.class_name}\t{p.probability:.4f}\n")
        ```
    """
    check_int("batch_size", batch_size)
    check_choice("tta", tta, TTA_MODES)
    runner, model = model, model.model if isinstance(model, Predictor) else model
    size = tuple(model.input_shape[1:3])
    array = None
    if isinstance(images_or_paths, np.ndarray):
        array = _checked_array(images_or_paths, size)
    run, width = _batch_runner(runner, engine, tta, batch_size)
    names = resolve_class_names(model, None, class_names or None)
    if array is None:  # a LiteRT file's images decoded by Pillow: no TensorFlow to import
        decoder = "pillow" if isinstance(model, LiteRTModel) else "tensorflow"
        files = read_image_batches(images_or_paths, size, batch_size, decoder=decoder)
        batches = ((batch.paths, batch.pixels, batch.errors) for batch in files)
    else:
        starts = range(0, len(array), batch_size)
        chunks = (array[i : i + batch_size] for i in starts)
        batches = ((None, chunk, [None] * len(chunk)) for chunk in chunks)
    classes, threshold = int(model.output_shape[-1]), _unknown_threshold(model)
    shown = class_thresholds_of(model)
    return _predictions(batches, run, names, classes, (threshold, shown), width)


def _unknown_threshold(model: keras.Model | LiteRTModel) -> float | None:
    """[`unknown_threshold`][catdog.models.confidence.unknown_threshold], without importing
    Keras for a [`LiteRTModel`][catdog.deploy.litert.LiteRTModel] (its metadata's)."""
    if isinstance(model, LiteRTModel):
        return model.threshold
    from catdog.models.confidence import unknown_threshold

    return unknown_threshold(model)


def _batch_runner(
    model: keras.Model | LiteRTModel | Predictor, engine: str, tta: str | None, batch_size: int
):
    """A function from a batch of images to its probabilities (and ood score, as one more
    column, for a model with one), on ``engine`` (a ``Predictor`` on its own) with ``tta``; and
    its outputs' width."""
    if isinstance(model, LiteRTModel):
        if tta is not None:
            raise InvalidArgumentError("tta needs a Keras model, not a LiteRT file.")
        width = model.output_shape[-1] + model.scored
        return (lambda batch: model.wide(batch, batch_size=batch_size)), width
    predictor = as_predictor(model, engine)
    return _tta_runner(predictor, tta, batch_size), predictor.classes + predictor.scored


def _checked_array(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``images`` as an ``(n, height, width, 3)`` array (one image gets a batch axis)."""
    array = images[None] if images.ndim == 3 else images
    if array.shape[1:] != (*size, 3):
        raise InvalidArgumentError(
            f"images must have shape (n, {size[0]}, {size[1]}, 3), got {array.shape}."
        )
    return array


def _predictions(batches, run, class_names, classes: int, thresholds: tuple, width: int):
    """The predictions of ``(paths or None, pixels, errors)`` batches, in order; a file that
    could not be read (its error set) gets NaN scores, no class and the error, logged."""
    done = 0
    for paths, pixels, errors in batches:
        wide = np.full((len(errors), width), np.nan)
        read = np.array([error is None for error in errors], bool)
        if read.any():
            wide[read] = run(pixels)
        probabilities, scores = split_scores(wide, classes)
        named = named_predictions(
            probabilities, class_names, paths, first=done, scores=scores,
            threshold=thresholds[0], class_thresholds=thresholds[1],
        )  # fmt: skip
        for prediction, error in zip(named, errors, strict=True):
            if error is not None:
                logger.warning("skipped %s: %s", prediction.path, error)
                prediction.class_name, prediction.unknown, prediction.error = "", False, error
            yield prediction
        done += len(errors)
