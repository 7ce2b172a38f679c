"""catdog: a Keras 3 model zoo for cat-vs-dog (and any folder-of-classes) image classification.

``import catdog`` is light: TensorFlow, Keras and matplotlib are imported only when a name that
needs them is first used.

Examples:
    >>> from catdog import build_transfer_model, compile_model
    >>> model = compile_model(build_transfer_model(weights=None))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

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
    "BACKBONES": "models.backbones",
    "ImageNetPreprocessing": "models.layers",
    "compile_model": "models.classifier",
    "get_base": "models.classifier",
    "augmentation_layers": "models.layers",
    "build_augmentation": "models.layers",
    "mobilenet_v2_preprocessing": "models.layers",
    "InferenceMode": "models.layers",
    "Splits": "data.pipelines",
    "from_directory": "data.pipelines",
    "load_cats_and_dogs": "data.datasets",
    "split_files": "data.files",
    "build_splits": "data.pipelines",
    "label_counts": "data.pipelines",
    "majority_baseline": "data.pipelines",
    "make_synthetic_dataset": "data.synthetic",
    "make_stand_in_weights": "models.weights",
    "train": "training.fit",
    "calibrate": "training.calibration",
    "Calibration": "training.calibration",
    "Confidence": "models.confidence",
    "fine_tune": "training.fine_tune",
    "unfreeze_base": "models.transfer",
    "merge_histories": "training.fine_tune",
    "evaluate": "report.evaluation",
    "wilson_interval": "report.evaluation",
    "write_model_card": "runs.card",
    "predict": "deploy.predict",
    "Report": "report.evaluation",
    "export": "deploy.export",
    "load_model": "deploy.export",
    "inference_model": "models.classifier",
    "decode_image": "data.images",
    "load_images": "data.images",
    "image_batches": "data.images",
    "ImageClassifier": "models.classifier",
    "class_names_of": "models.classifier",
    "precision_scope": "models.registry",
    "Predictor": "deploy.predict",
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

if TYPE_CHECKING:  # the lazily exported names, for type checkers and IDEs
    from catdog.data.datasets import load_cats_and_dogs
    from catdog.data.files import split_files
    from catdog.data.images import decode_image, image_batches, load_images
    from catdog.data.pipelines import (
        Splits,
        build_splits,
        from_directory,
        label_counts,
        majority_baseline,
    )
    from catdog.data.synthetic import make_synthetic_dataset
    from catdog.deploy.embeddings import Embeddings
    from catdog.deploy.export import export, load_model
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
    from catdog.models.backbones import BACKBONES
    from catdog.models.classifier import (
        ImageClassifier,
        class_names_of,
        compile_model,
        get_base,
        inference_model,
    )
    from catdog.models.cnn import (
        build_augmented_model,
        build_baseline_model,
        build_cnn_model,
        build_preprocessed_model,
    )
    from catdog.models.confidence import Confidence
    from catdog.models.layers import (
        ImageNetPreprocessing,
        InferenceMode,
        augmentation_layers,
        build_augmentation,
        mobilenet_v2_preprocessing,
    )
    from catdog.models.registry import (
        ModelSpec,
        build_model,
        list_models,
        model_spec,
        precision_scope,
        register_model,
    )
    from catdog.models.transfer import build_transfer_model, unfreeze_base
    from catdog.models.weights import make_stand_in_weights
    from catdog.report.audit_report import AuditReport
    from catdog.report.evaluation import Report, evaluate, wilson_interval
    from catdog.report.interpret import gradcam
    from catdog.report.plotting import (
        plot_augmentation,
        plot_confusion_matrix,
        plot_gradcam,
        plot_history,
        plot_label_counts,
        plot_lr_find,
        plot_misclassified,
        plot_samples,
    )
    from catdog.runs.card import write_model_card
    from catdog.runs.embeddings import embed, similar
    from catdog.training.audit import audit
    from catdog.training.calibration import Calibration, calibrate
    from catdog.training.fine_tune import (
        fine_tune,
        merge_histories,
    )
    from catdog.training.fit import train
    from catdog.training.lr_finder import lr_find

_SUBMODULES = {
    "cli", "data", "deploy", "errors", "io", "models", "report", "runs", "training",
}  # fmt: skip

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"catdog.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'catdog' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"catdog.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
