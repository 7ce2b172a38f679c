"""The class names of a model and of its exported files: one labels file per exported file, ONNX
metadata, ``class_names.json`` beside a model, and the one rule that names a model's outputs
([`resolve_class_names`][catdog.deploy.labels.resolve_class_names])."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catdog.errors import InvalidArgumentError
from catdog.io import read_json

if TYPE_CHECKING:
    import keras

    from catdog.deploy.litert import LiteRTModel  # only named in annotations


logger = logging.getLogger("catdog")


def labels_path(path: str | os.PathLike) -> Path:
    """The labels file of an exported file: ``model.tflite`` -> ``model.tflite.labels.txt``.

    One labels file per exported file, so ``model.tflite`` and ``model.onnx`` never share
    one. Files exported by older catdog versions used ``model.labels.txt``, which
    [`exported_class_names`][catdog.deploy.labels.exported_class_names] still reads.

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


def exported_class_names_and_source(
    path: str | os.PathLike,
) -> tuple[list[str] | None, str | None]:
    """``(class names, the file they were read from)`` of a ``.tflite`` or ``.onnx`` file
    exported by catdog, or ``(None, None)``; read as
    [`exported_class_names`][catdog.deploy.labels.exported_class_names] says.

    Examples:
        ```python
        exported_class_names_and_source("model.tflite")
        # (['cats', 'dogs'], 'model.tflite.labels.txt')
        ```
    """
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
    installed), else from its labels file ([`labels_path`][catdog.deploy.labels.labels_path]),
    else from the ``NAME.labels.txt`` that older catdog versions wrote.

    Examples:
        ```python
        exported_class_names("model.tflite")
        # ['cats', 'dogs']
        ```
    """
    return exported_class_names_and_source(path)[0]


def class_names_beside(model_path: str | os.PathLike) -> list[str] | None:
    """The names in ``class_names.json`` beside a model file (its run folder), or ``None``."""
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
    [`LiteRTModel`][catdog.deploy.litert.LiteRTModel]'s labels); else ``class_names.json`` beside
    ``model_path`` (a run folder of an older catdog) when it names as many classes as the
    model has outputs; else ``class_0``, ``class_1``...

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> resolve_class_names(build_baseline_model(input_shape=(32, 32, 3)))
        ['class_0', 'class_1']
    """
    import sys

    count = int(model.output_shape[-1])
    if class_names is not None:
        names = list(class_names)
        if len(names) != count:
            raise InvalidArgumentError(
                f"The model predicts {count} classes but {len(names)} class names were given."
            )
        return names
    # a Keras model's, if it is a catdog model; another model's (a LiteRTModel's labels). A
    # Keras model exists only where Keras is imported: a LiteRT file's names import nothing.
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        from catdog.models.classifier import class_names_of

        own = class_names_of(model)
    else:
        own = getattr(model, "class_names", None)
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
