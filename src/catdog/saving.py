"""Export a trained model as a ``.keras`` file, a TensorFlow SavedModel, or TFLite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras

from catdog._rules import EXPORT_FORMATS
from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError
from catdog.io import atomic_path, save_model, write_atomic
from catdog.models import inference_model

FORMATS = EXPORT_FORMATS


def _check_target(path: Path, format: str, overwrite: bool) -> None:  # noqa: A002
    """Refuse to replace anything an export did not write (and anything without overwrite)."""
    folder = format == "saved_model"
    if not path.exists():
        return
    if path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        wanted = "a folder" if folder else "a file"
        raise OutputError(f"{str(path)!r} is {kind}, but a {format} export is {wanted}.")
    if folder and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if not overwrite:
        raise OutputError(
            f"{str(path)!r} already exists. Choose a new path, or pass overwrite=True "
            "(catdog export --overwrite) to replace a previous export."
        )
    if folder and not (path / "saved_model.pb").is_file():
        raise OutputError(
            f"{str(path)!r} is a folder that does not hold a SavedModel export; catdog will "
            "not replace it, even with overwrite. Choose a new or empty folder."
        )


def export(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "keras",  # noqa: A002
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` to ``path`` in ``format``, atomically, and return the path.

    - ``"keras"``: a ``.keras`` file for ``keras.saving.load_model``;
    - ``"saved_model"``: a SavedModel folder (TF Serving), with a ``serve`` endpoint taking
      float32 pixels 0..255;
    - ``"tflite"``: a ``.tflite`` flatbuffer for ``tf.lite.Interpreter`` / LiteRT.

    Augmentation layers are inactive in all of them. An existing ``path`` is never replaced
    unless ``overwrite=True``, and even then only a file, or a folder that holds a previous
    SavedModel export: an export never deletes what it did not write.

    Examples:
        ```python
        export(model, "model.tflite", format="tflite")
        ```
    """
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {FORMATS}, got {format!r}.")
    path = Path(path)
    _check_target(path, format, overwrite)
    if format == "keras":
        return save_model(model, path)
    model = inference_model(model)  # no random ops in the exported graph
    if format == "saved_model":
        with atomic_path(path, directory=True) as tmp:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        return path
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        flatbuffer = converter.convert()
    return write_atomic(path, lambda out: out.write_bytes(flatbuffer))


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model (catdog's layers registered, ``safe_mode=True``).

    Raises a clear error when the file is missing or is not a Keras model.

    Examples:
        ```python
        model = load_model("runs/demo/model.keras")
        ```
    """
    import catdog.layers  # noqa: F401  (registers catdog's serializable layers)

    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"Model file {str(path)!r} does not exist.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise InvalidArgumentError(
            f"Could not load {str(path)!r} as a Keras model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Pass a .keras file saved "
            "by catdog or keras."
        ) from error
