"""Saving and loading a catdog model as a ``.keras`` file: what training, tuning, the audit,
runs and exports all use, in the room of the models. Loading registers catdog's layers (the
``catdog.models`` package imports them) and checks the model's calibration."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.io import write_atomic
from catdog.models.confidence import check_confidence


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """``model.save(path)`` atomically (``.keras`` format).

    Examples:
        ```python
        save_model(model, "runs/demo/model.keras")
        ```
    """
    if Path(path).suffix != ".keras":
        raise InvalidArgumentError(f"Model files must end in .keras, got {str(path)!r}.")
    return write_atomic(path, model.save)


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model (catdog's layers registered, ``safe_mode=True``).

    Raises a clear error when the file is missing or is not a Keras model.

    Examples:
        ```python
        model = load_model("runs/demo/model.keras")
        ```
    """
    path = Path(path)
    if path.is_dir():
        kind = "a SavedModel export" if (path / "saved_model.pb").is_file() else "a folder"
        raise InvalidArgumentError(
            f"{str(path)!r} is {kind}, not a model file. Pass a .keras file saved by catdog or "
            "keras."
        )
    if not path.is_file():
        raise InputFileNotFoundError(f"Model file {str(path)!r} does not exist.")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise InvalidArgumentError(
            f"Could not load {str(path)!r} as a Keras model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Pass a .keras file saved "
            "by catdog or keras."
        ) from error
    check_confidence(model, str(path))
    return model
