"""Using a trained model: `predict` (engines, batches), `prediction` (one image's answer and
the rule that names it, multi-label included), `litert` (conversion, its cache, the
`.tflite` model), `prediction_files` (one row per image, as CSV or JSON lines), `labels`
(the class names of a model or an exported file), `metadata` (what an exported file carries),
`embeddings` (image embeddings and their file), `export` (exporting to LiteRT, ONNX and
SavedModel) and `ray_data` (prediction and embeddings on a Ray cluster, the `ray` extra)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
