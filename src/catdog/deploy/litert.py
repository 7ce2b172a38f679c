"""LiteRT: converting a model to a ``.tflite`` flatbuffer, the disk cache of conversions (keyed by
the model's configuration and weights, each file checked by its SHA-256), and
[`LiteRTModel`][catdog.deploy.litert.LiteRTModel], an exported ``.tflite`` file as a model."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import check_finite_threshold
from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError

if TYPE_CHECKING:
    import keras


from catdog.data.download import default_cache_dir
from catdog.data.images import PREDICT_BATCH_SIZE, run_in_batches
from catdog.deploy.labels import exported_class_names_and_source
from catdog.deploy.metadata import read_litert_metadata
from catdog.io import file_lock, sha256sum, write_atomic, write_text

logger = logging.getLogger("catdog")


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

    from catdog.models.confidence import probability_model

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
    digest = hashlib.sha256(f"{text}|tf {tf.__version__}|format 3|{probabilities}".encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def litert_cache_path(
    model: keras.Model,
    cache_dir: str | os.PathLike | None = None,
    *,
    probabilities: bool = True,
) -> Path:
    """Where [`cached_litert_file`][catdog.deploy.litert.cached_litert_file] keeps ``model``
    converted (the file may not exist yet): ``KEY.tflite`` in ``cache_dir``, default
    ``litert/`` in the Keras cache folder.

    Examples:
        ```python
        litert_cache_path(model).exists()  # converted before, by any process
        ```
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "litert"
    return folder / f"{litert_cache_key(model, probabilities=probabilities)}.tflite"


def cached_litert_file(
    model: keras.Model,
    cache_dir: str | os.PathLike | None = None,
    *,
    probabilities: bool = True,
) -> Path:
    """The model converted for LiteRT, from the on-disk cache or converted into it.

    The file is named by [`litert_cache_key`][catdog.deploy.litert.litert_cache_key] (config and
    weights), written atomically under ``cache_dir`` (default: ``litert/`` in the Keras cache
    folder, ``$KERAS_HOME`` or ``~/.keras``, where catdog keeps its datasets) with its SHA-256
    beside it (``KEY.tflite.sha256``), while a lock keeps concurrent conversions of the same
    model from racing: converting once serves every later process. A cached file that does
    not match its SHA-256 (or, without one, that LiteRT cannot load) is converted again, with
    a warning naming it. A cache folder that cannot be written raises an
    [`OutputError`][catdog.errors.OutputError] naming it. ``probabilities`` is as in
    [`litert_flatbuffer`][catdog.deploy.litert.litert_flatbuffer].

    Examples:
        ```python
        path = cached_litert_file(model)  # seconds the first time, instant afterwards
        ```
    """
    path = litert_cache_path(model, cache_dir, probabilities=probabilities)
    folder, checksum = path.parent, path.with_name(f"{path.name}.sha256")
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


def _class_thresholds(metadata: dict, classes: int, path) -> list[float] | None:
    """A multi-label file's thresholds, checked: one number in 0..1 per class, or ``None``."""
    found = metadata.get("class_thresholds")
    if found is None:
        return None
    if not (
        isinstance(found, list)
        and len(found) == classes
        and all(isinstance(t, (int, float)) and 0 <= t <= 1 for t in found)
    ):
        raise InvalidArgumentError(
            f"{str(path)!r}: its class_thresholds must be one number in 0..1 per class "
            f"({classes}), got {found!r}. Export the model again."
        )
    return [float(t) for t in found]


class LiteRTModel:
    """A ``.tflite`` file as a classifier: its input shape, class names and probabilities.

    The class names come from the labels file that [`export`][catdog.deploy.export.export] writes
    beside the file ([`exported_class_names`][catdog.deploy.labels.exported_class_names]), else
    from the file's own metadata
    ([`read_litert_metadata`][catdog.deploy.metadata.read_litert_metadata]);
    names for another number of classes than the file predicts are refused. A file exported
    from a model with an ``unknown`` answer also outputs its ``ood_score``: ``scored`` is then
    true, ``threshold`` (from its metadata) says above which score an image is ``unknown``, and
    [`scores`][catdog.deploy.litert.LiteRTModel.scores] returns both. A multi-label model's file
    says so (``multi_label``) and carries its ``class_thresholds``. Any batch size works.

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
        outputs = self._interpreter.get_output_details()
        self._output = next((o for o in outputs if len(o["shape"]) == 2), None)
        if self._output is None:
            shapes = [tuple(int(d) for d in o["shape"]) for o in outputs]
            raise InvalidArgumentError(
                f"{str(path)!r} is not a classifier: its outputs have shapes {shapes}, none of "
                "them (images, classes). Export a catdog classifier (catdog export)."
            )
        self._score = next((o for o in outputs if len(o["shape"]) == 1), None)
        self.scored = self._score is not None
        self.input_shape = (None, *(int(d) for d in self._input["shape"][1:]))
        self.output_shape = (None, int(self._output["shape"][-1]))
        self._shape = None
        self.metadata = read_litert_metadata(path) or {}
        threshold = self.metadata.get("threshold")
        check_finite_threshold(threshold, str(path))
        self.threshold = float(threshold) if self.scored and threshold is not None else None
        names, source = exported_class_names_and_source(path)
        if names is None and isinstance(self.metadata.get("class_names"), list):
            names, source = [str(n) for n in self.metadata["class_names"]], str(path)
        if names is not None and len(names) != self.output_shape[-1]:
            raise InvalidArgumentError(
                f"{source!r} names {len(names)} classes but {str(path)!r} predicts "
                f"{self.output_shape[-1]}: it belongs to another model. Export the model "
                "again, or pass the class names."
            )
        self.class_names = names
        self.labels_source = source  # the file the names came from, for messages
        self.multi_label = self.metadata.get("multi_label") is True
        self.class_thresholds = _class_thresholds(self.metadata, self.output_shape[-1], path)

    def __call__(self, images, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """Probabilities ``(n, classes)`` of an ``(n, h, w, 3)`` array, ``batch_size`` images
        at a time."""
        array = images if isinstance(images, np.ndarray) else np.asarray(images, np.float32)
        if array.ndim != len(self.input_shape):  # one image is not taken for a batch here
            raise InvalidArgumentError(
                f"images must have shape (n, {', '.join(map(str, self.input_shape[1:]))}), "
                f"got {array.shape}."
            )
        return self.wide(array, batch_size=batch_size)[:, : self.output_shape[-1]]

    def scores(self, images, *, batch_size: int = PREDICT_BATCH_SIZE):
        """``(probabilities, ood scores)`` of an ``(n, h, w, 3)`` array; the scores are
        ``None`` for a file without them."""
        wide = self.wide(np.asarray(images, np.float32), batch_size=batch_size)
        classes = self.output_shape[-1]
        return wide[:, :classes], (wide[:, classes] if self.scored else None)

    def wide(self, images, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """The probabilities with the ood score as one more column, when the file has one."""
        classes = self.output_shape[-1] + self.scored
        return run_in_batches(self._invoke, images, self.input_shape[1:], batch_size, classes)

    def _invoke(self, array: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter
        if array.shape != self._shape:  # another batch size: resize, no reconversion
            interpreter.resize_tensor_input(self._input["index"], array.shape)
            interpreter.allocate_tensors()
            self._shape = array.shape
        interpreter.set_tensor(self._input["index"], array)
        interpreter.invoke()
        probs = interpreter.get_tensor(self._output["index"]).astype(np.float64)
        if self._score is None:
            return probs
        score = interpreter.get_tensor(self._score["index"]).astype(np.float64)
        return np.concatenate([probs, score.reshape(-1, 1)], axis=1)


def litert_model_or_none(
    model: keras.Model,
    engine: str,
    cache_dir: str | os.PathLike | None = None,
    probabilities: bool = True,
) -> LiteRTModel | None:
    """``model`` converted for LiteRT once (see
    [`cached_litert_file`][catdog.deploy.litert.cached_litert_file]), for ``engine``
    ``"litert"`` or ``"auto"``. Where the conversion or the cache folder fails, ``"litert"``
    raises a catdog error and ``"auto"`` logs one line and returns ``None`` (run TensorFlow).

    Examples:
        ```python
        lite = litert_model_or_none(model, "auto")  # None: predict with TensorFlow
        ```
    """
    try:
        return LiteRTModel(cached_litert_file(model, cache_dir, probabilities=probabilities))
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
