"""What an exported file says about itself: its class names, temperature, ``unknown`` score and
threshold, and input spec, stored inside the file (a ``.tflite`` flatbuffer's metadata, an
``.onnx`` file's ``metadata_props``) and read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from catdog._version import __version__

LITERT_METADATA_NAME = "catdog"
"""The name of the metadata entry in a ``.tflite`` file that holds catdog's JSON."""


def export_metadata(model, class_names: list[str]) -> dict:
    """The JSON-ready description of ``model`` that every exported file carries.

    ``class_names``; ``input`` (``shape`` of one image, ``dtype``, value ``range``: raw 0..255
    RGB pixels); ``outputs`` (``probabilities``, and ``ood_score`` for a model with a score);
    ``temperature`` (1 when uncalibrated), ``ood_method``, ``threshold`` (an ``ood_score`` above
    it is ``unknown``) and ``coverage`` (the share of validation images it accepts, as asked);
    for a multi-label model, ``multi_label`` and ``class_thresholds`` (``None``: 0.5 each).

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> meta = export_metadata(build_baseline_model(input_shape=(32, 32, 3)), ["a", "b"])
        >>> meta["input"], meta["threshold"]
        ({'shape': [32, 32, 3], 'dtype': 'float32', 'range': [0, 255]}, None)
    """
    from catdog.models.confidence import confidence_layer

    layer = confidence_layer(model)
    found = layer.describe() if layer is not None else {}
    method = found.get("method")
    return {
        "class_names": list(class_names),
        "input": {
            "shape": [int(d) for d in model.input_shape[1:]],
            "dtype": "float32",
            "range": [0, 255],
        },  # fmt: skip
        "outputs": ["probabilities", "ood_score"] if method else ["probabilities"],
        "temperature": found.get("temperature", 1.0),
        "ood_method": method,
        "threshold": found.get("threshold"),
        "coverage": found.get("coverage"),
        "catdog": __version__,
        **_multi_label(model),
    }


def _multi_label(model) -> dict:
    """A multi-label model's ``multi_label`` and ``class_thresholds`` (nothing otherwise)."""
    if getattr(model, "multi_label", False) is not True:
        return {}
    thresholds = getattr(model, "class_thresholds", None)
    return {"multi_label": True, "class_thresholds": list(thresholds) if thresholds else None}


def _schema():
    """The TFLite flatbuffer schema's Python classes (LiteRT's, else TensorFlow's copy)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def add_litert_metadata(flatbuffer: bytes, metadata: dict) -> bytes:
    """``flatbuffer`` with ``metadata`` (JSON) as its model metadata entry ``"catdog"``.

    The TFLite schema's own place for metadata (a named buffer), which LiteRT ignores when it
    runs the model and [`read_litert_metadata`][catdog.deploy.metadata.read_litert_metadata]
    reads.

    Examples:
        ```python
        Path("model.tflite").write_bytes(add_litert_metadata(flatbuffer, {"threshold": 3.2}))
        ```
    """
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = LITERT_METADATA_NAME, len(model.buffers) - 1
    kept = [m for m in model.metadata or [] if _text(m.name) != LITERT_METADATA_NAME]
    model.metadata = [*kept, entry]
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_litert_metadata(path: str | os.PathLike) -> dict | None:
    """The catdog metadata inside a ``.tflite`` file, or ``None`` (none, or not readable).

    Examples:
        ```python
        read_litert_metadata("model.tflite")["threshold"]
        # 41.2
        ```
    """
    try:
        data = Path(path).read_bytes()
        model = _schema().Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if _text(entry.Name()) == LITERT_METADATA_NAME:
                raw = model.Buffers(entry.Buffer()).DataAsNumpy()
                found = json.loads(np.asarray(raw, np.uint8).tobytes().decode("utf-8"))
                return found if isinstance(found, dict) else None
    except Exception:  # not a flatbuffer, or no (valid) metadata: the file runs without it
        return None
    return None


def onnx_metadata_props(metadata: dict) -> dict[str, str]:
    """The ``metadata_props`` of an ``.onnx`` export: each metadata field as JSON text.

    Examples:
        >>> onnx_metadata_props({"class_names": ["a", "b"], "threshold": None})
        {'class_names': '["a", "b"]', 'threshold': 'null'}
    """
    return {key: json.dumps(value) for key, value in metadata.items()}
