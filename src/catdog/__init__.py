"""catdog: a Keras 3 model zoo for cat-vs-dog (and any folder-of-classes) image classification.

``import catdog`` is light: TensorFlow, Keras and matplotlib are imported only when a name that
needs them is first used.

Examples:
    >>> from catdog import build_transfer_model, compile_model
    >>> model = compile_model(build_transfer_model(weights=None))
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

from catdog._version import __version__

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "build_baseline_model": "models.cnn",
    "build_augmented_model": "models.cnn",
    "build_preprocessed_model": "models.cnn",
    "build_transfer_model": "models.transfer",
    "build_model": "models.registry",
    "build_cnn_model": "models.cnn",
    "list_models": "models.registry",
    "register_model": "models.registry",
    "model_spec": "models.registry",
    "ModelSpec": "models.registry",
    "compile_model": "models.classifier",
    "Splits": "data.pipelines",
    "from_directory": "data.pipelines",
    "load_cats_and_dogs": "data.datasets",
    "split_files": "data.files",
    "build_splits": "data.pipelines",
    "train": "training.fit",
    "calibrate": "training.calibration",
    "fine_tune": "training.fine_tune",
    "evaluate": "report.evaluation",
    "predict": "deploy.predict",
    "Report": "report.evaluation",
    "export": "deploy.export",
    "load_model": "models.saving",
    "Predictor": "deploy.predict",
    "audit": "training.audit",
    "embed": "runs.embeddings",
    "similar": "runs.embeddings",
    "Embeddings": "deploy.embeddings",
    "AuditReport": "report.audit_report",
    "CatdogError": "errors",
    "DatasetError": "errors",
    "DatasetNotFoundError": "errors",
    "InputFileNotFoundError": "errors",
    "OutputError": "errors",
    "BusyError": "errors",
    "ClusterError": "errors",
    "TrainingDivergedError": "errors",
    "MissingExtraError": "errors",
    "DownloadError": "errors",
    "IntegrityError": "errors",
    "InvalidArgumentError": "errors",
}

# moved out of the root (which keeps the workflow a user calls) after 0.2.0: still resolved,
# with a DeprecationWarning naming their module; removed no earlier than 0.4.0
_MOVED = {
    "BACKBONES": "models.backbones",
    "ImageNetPreprocessing": "models.layers",
    "get_base": "models.classifier",
    "augmentation_layers": "models.layers",
    "build_augmentation": "models.layers",
    "mobilenet_v2_preprocessing": "models.layers",
    "InferenceMode": "models.layers",
    "label_counts": "data.pipelines",
    "majority_baseline": "data.pipelines",
    "make_synthetic_dataset": "data.synthetic",
    "make_stand_in_weights": "models.weights",
    "Calibration": "training.calibration",
    "Confidence": "models.confidence",
    "unfreeze_base": "models.transfer",
    "merge_histories": "training.fine_tune",
    "wilson_interval": "report.intervals",
    "write_model_card": "runs.card",
    "inference_model": "models.classifier",
    "decode_image": "data.images",
    "load_images": "data.images",
    "image_batches": "data.images",
    "ImageClassifier": "models.classifier",
    "class_names_of": "models.classifier",
    "precision_scope": "models.registry",
    "plot_samples": "report.plotting",
    "plot_label_counts": "report.plotting",
    "plot_augmentation": "report.plotting",
    "plot_history": "report.plotting",
    "plot_confusion_matrix": "report.plotting",
    "plot_misclassified": "report.plotting",
    "plot_gradcam": "report.plotting",
    "plot_lr_find": "report.plotting",
    "gradcam": "report.interpret",
    "lr_find": "training.lr_finder",
}

if TYPE_CHECKING:  # the lazily exported names, for type checkers and IDEs (= _EXPORTS)
    from catdog.data.datasets import load_cats_and_dogs
    from catdog.data.files import split_files
    from catdog.data.pipelines import Splits, build_splits, from_directory
    from catdog.deploy.embeddings import Embeddings
    from catdog.deploy.export import export
    from catdog.deploy.predict import Predictor, predict
    from catdog.errors import (
        BusyError,
        CatdogError,
        ClusterError,
        DatasetError,
        DatasetNotFoundError,
        DownloadError,
        InputFileNotFoundError,
        IntegrityError,
        InvalidArgumentError,
        MissingExtraError,
        OutputError,
        TrainingDivergedError,
    )
    from catdog.models.classifier import compile_model
    from catdog.models.cnn import (
        build_augmented_model,
        build_baseline_model,
        build_cnn_model,
        build_preprocessed_model,
    )
    from catdog.models.registry import (
        ModelSpec,
        build_model,
        list_models,
        model_spec,
        register_model,
    )
    from catdog.models.saving import load_model
    from catdog.models.transfer import build_transfer_model
    from catdog.report.audit_report import AuditReport
    from catdog.report.evaluation import Report, evaluate
    from catdog.runs.embeddings import embed, similar
    from catdog.training.audit import audit
    from catdog.training.calibration import calibrate
    from catdog.training.fine_tune import fine_tune
    from catdog.training.fit import train

_SUBMODULES = {
    "cli", "data", "deploy", "errors", "io", "models", "report", "runs", "timings", "training",
}  # fmt: skip

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"catdog.{name}")
    module = _EXPORTS.get(name)
    if module is None and name in _MOVED:
        module = _MOVED[name]
        warnings.warn(
            f"catdog.{name} moved out of the package root: import it from catdog.{module} "
            "(the root name goes no earlier than 0.4.0).",
            DeprecationWarning,
            stacklevel=2,
        )
    if module is None:
        raise AttributeError(f"module 'catdog' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"catdog.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
