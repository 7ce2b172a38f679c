"""Saving and loading: ``.keras`` files, SavedModels that serve, LiteRT (TFLite) files.

Every artifact carries the model's class names: the ``.keras`` config, the SavedModel's
``serving_default`` signature (encoded image bytes in, probabilities and class names out), an
``.onnx`` file's metadata, and a labels file of its own beside each ``.tflite`` and ``.onnx``
file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import keras

from catdog._rules import (
    EXPORT_FORMAT_ALIASES,
    EXPORT_FORMATS,
    EXPORT_QUANTIZATIONS,
    UNKNOWN,
    already_exists,
    check_choice,
    check_single_label,
)
from catdog.data.images import decode_image
from catdog.deploy.labels import ONNX_CLASS_NAMES_KEY, labels_path, resolve_class_names
from catdog.deploy.litert import litert_flatbuffer
from catdog.deploy.metadata import add_litert_metadata, export_metadata, onnx_metadata_props
from catdog.errors import (
    InvalidArgumentError,
    MissingExtraError,
    OutputError,
)
from catdog.io import atomic_path
from catdog.models.classifier import class_names_of, inference_model
from catdog.models.confidence import (
    check_confidence,
    confidence_layer,
    confidence_outputs,
    probability_model,
    unknown_threshold,
)
from catdog.models.saving import load_model, save_model  # noqa: F401 (their home before)

FORMATS = EXPORT_FORMATS
"""Keras' export format names: ``"keras"``, ``"tf_saved_model"``, ``"litert"``, ``"onnx"``."""
FORMAT_ALIASES = EXPORT_FORMAT_ALIASES
"""Older catdog names that still work."""
QUANTIZATIONS = EXPORT_QUANTIZATIONS
"""LiteRT weight quantizations: ``None`` (float32), ``"float16"``, ``"dynamic"`` (int8)."""


SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb"})
"""What a SavedModel export writes in its folder: all that ``overwrite=True`` may replace."""


def _check_target(path: Path, format: str, overwrite: bool) -> None:  # noqa: A002
    """Refuse to replace anything an export did not write (and anything without overwrite)."""
    if path.exists():
        _check_existing(path, format, overwrite)
    if format in ("litert", "onnx"):
        labels = labels_path(path)
        if labels.is_dir():
            raise OutputError(
                f"{str(labels)!r}, where the labels of {str(path)!r} go, is a folder. Choose "
                "another path."
            )
        if labels.exists() and not overwrite:
            raise already_exists(labels, "export", "a previous export and its labels")


def _check_existing(path: Path, format: str, overwrite: bool) -> None:  # noqa: A002
    folder = format == "tf_saved_model"
    if path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        wanted = "a folder" if folder else "a file"
        raise OutputError(f"{str(path)!r} is {kind}, but a {format} export is {wanted}.")
    if folder and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if not overwrite:
        raise already_exists(path, "export", "a previous export")
    if folder and not (path / "saved_model.pb").is_file():
        raise OutputError(
            f"{str(path)!r} is a folder that does not hold a SavedModel export; catdog will "
            "not replace it, even with overwrite. Choose a new or empty folder."
        )
    if not folder:
        return
    others = sorted(p.name for p in path.iterdir() if p.name not in SAVED_MODEL_ENTRIES)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise OutputError(
            f"{str(path)!r} holds files a SavedModel export did not write ({shown}); catdog "
            "will not delete them, even with overwrite. Move them, or choose a new folder."
        )


def export(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "keras",  # noqa: A002
    *,
    overwrite: bool = False,
    quantize: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write ``model`` to ``path`` in ``format``, atomically, and return the path.

    - ``"keras"``: a ``.keras`` file for ``keras.saving.load_model`` (class names inside);
    - ``"tf_saved_model"`` (alias ``"saved_model"``): a SavedModel folder for TF Serving or
      ``tf.saved_model.load``. Its ``serving_default`` signature takes a batch of encoded
      image files (``image_bytes``: JPEG, PNG, BMP, GIF, WebP; any size), decodes and resizes
      them exactly as catdog does, and returns ``probabilities``, ``class_index`` and
      ``class_name``; its ``serve`` signature takes float32 pixels 0..255 of the model's size
      and returns probabilities;
    - ``"litert"`` (alias ``"tflite"``): a ``.tflite`` flatbuffer for LiteRT /
      ``tf.lite.Interpreter``, taking pixels; the class names go to its own labels file
      beside it (``model.tflite.labels.txt``, [`labels_path`][catdog.deploy.labels.labels_path]),
      one per line, written with the model file (both staged, then moved in together).
      ``quantize="float16"`` halves the file, ``"dynamic"`` stores int8 weights;
    - ``"onnx"``: an ``.onnx`` file through Keras' own ``model.export(format="onnx")`` (needs
      catdog's ``onnx`` extra: tf2onnx and onnx), taking pixels; the class names go into its
      ``metadata_props`` (key ``"class_names"``, a JSON list) and to a labels file as for
      LiteRT (``model.onnx.labels.txt``).

    The class names are ``class_names`` when given (not for ``"keras"``: a ``.keras`` file
    keeps the model's own), else the model's own, else ``class_0``, ``class_1``...
    ([`resolve_class_names`][catdog.deploy.labels.resolve_class_names]). Augmentation layers are
    left out of all of them, and every format outputs probabilities (a logits model gets a
    softmax). An existing ``path`` (or its labels file) is never replaced unless
    ``overwrite=True``, and even then only a file, or a folder that holds nothing but a
    previous SavedModel export: an export never deletes what it did not write.

    Args:
        model: the trained model (augmentation layers are left out).
        path: the file (or SavedModel folder) to write.
        format: ``"keras"``, ``"tf_saved_model"``, ``"litert"`` or ``"onnx"`` (or an alias).
        overwrite: replace an earlier export at ``path`` (never anything else).
        quantize: for ``"litert"`` only: ``"float16"``, ``"dynamic"`` or ``None``.
        class_names: the class names to write, instead of the model's own (not for ``"keras"``).

    Examples:
        ```python
        export(model, "model.tflite", format="litert", quantize="float16")
        ```
    """
    check_choice("format", format, (*FORMATS, *FORMAT_ALIASES))
    format = FORMAT_ALIASES.get(format, format)  # noqa: A001
    check_choice("quantize", quantize, QUANTIZATIONS)
    check_confidence(model, model.name)
    if quantize and format != "litert":
        raise InvalidArgumentError("quantize applies to format='litert' only.")
    if format == "keras" and class_names is not None:
        if list(class_names) != class_names_of(model):
            raise InvalidArgumentError(
                "class_names applies to the tf_saved_model, litert and onnx formats; a .keras "
                "file keeps the model's own (build the model with class_names=...)."
            )
    names = resolve_class_names(model, None, class_names)
    path = Path(path)
    _check_target(path, format, overwrite)
    if format == "keras":
        return save_model(model, path)
    if format == "tf_saved_model":
        check_single_label(
            model, "The SavedModel export", "export to litert or onnx (they carry the thresholds)."
        )
        with atomic_path(path, directory=True) as tmp:
            _serving_archive(model, names).write_out(str(tmp), verbose=False)
        return path
    if format == "onnx":
        return _export_onnx(model, path, names)
    return _export_litert(model, path, quantize, names)


def _write_with_labels(path: Path, names: list[str], write) -> Path:
    """``write(tmp)`` the model and stage its labels file; move both in only when both worked.

    The labels go in first, the model right after: two renames apart, never a crash in the
    middle of writing either ([`LiteRTModel`][catdog.deploy.litert.LiteRTModel] refuses labels
    that do not fit the model).
    """
    with atomic_path(path) as tmp, atomic_path(labels_path(path)) as tmp_labels:
        write(tmp)
        tmp_labels.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def _export_onnx(model: keras.Model, path: Path, names: list[str]) -> Path:
    try:
        import onnx
        import tf2onnx  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            'format="onnx" needs tf2onnx and onnx: pip install tf2onnx onnx (catdog\'s "onnx" '
            "extra)."
        ) from None
    import numpy as np

    with_probabilities = probability_model(model)
    with_probabilities(np.zeros((1, *model.input_shape[1:]), "float32"))  # Keras needs one call

    def write(tmp: Path) -> None:
        with_probabilities.export(str(tmp), format="onnx", verbose=False)
        proto = onnx.load(str(tmp))
        props = onnx_metadata_props(export_metadata(model, names))
        props[ONNX_CLASS_NAMES_KEY] = json.dumps(names)
        kept = [p for p in proto.metadata_props if p.key not in props]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))

    return _write_with_labels(path, names, write)


def _serving_archive(model: keras.Model, names: list[str] | None = None):
    """A Keras ExportArchive: ``serving_default`` on image bytes, ``serve`` on pixels."""
    import tensorflow as tf

    without_augmentation = inference_model(model)
    height, width = model.input_shape[1:3]
    names = tf.constant(names or resolve_class_names(model))
    layer = confidence_layer(model)

    def from_pixels(pixels):
        outputs = confidence_outputs(model, pixels)
        return outputs if len(outputs) > 1 else outputs["probabilities"]

    def from_bytes(image_bytes):
        pixels = tf.map_fn(
            lambda data: decode_image(data, (height, width)),
            image_bytes,
            fn_output_signature=tf.TensorSpec((height, width, 3), tf.uint8),
        )
        outputs = confidence_outputs(model, tf.cast(pixels, tf.float32))
        probs = outputs["probabilities"]
        index = tf.argmax(probs, axis=1, output_type=tf.int32)
        result = {
            "probabilities": probs,
            "class_index": index,
            "class_name": tf.gather(names, index),
        }
        if "ood_score" in outputs:  # past the threshold: "unknown" (probabilities still given)
            unknown = ~(outputs["ood_score"] <= tf.convert_to_tensor(layer.threshold))  # NaN too
            result.update(ood_score=outputs["ood_score"], is_unknown=unknown,
                          class_name=tf.where(unknown, UNKNOWN, result["class_name"]))  # fmt: skip
        return result

    archive = keras.export.ExportArchive()
    archive.track(without_augmentation)
    archive.add_endpoint(
        "serving_default",
        from_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")],
    )
    archive.add_endpoint(
        "serve",
        from_pixels,
        input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, name="pixels")],
    )
    return archive


def _export_litert(model: keras.Model, path: Path, quantize: str | None, names: list[str]) -> Path:
    if quantize and unknown_threshold(model) is not None:
        logging.getLogger("catdog").warning(
            "Quantizing (%s) also rounds the weights of the unknown score, while its threshold "
            "stays the float model's: check the share of validation images %s accepts before "
            "relying on its unknown answers.",
            quantize,
            path.name,
        )
    flatbuffer = add_litert_metadata(
        litert_flatbuffer(model, quantize), export_metadata(model, names)
    )
    return _write_with_labels(path, names, lambda out: out.write_bytes(flatbuffer))
