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

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "build_baseline_model": "models",
    "build_augmented_model": "models",
    "build_preprocessed_model": "models",
    "build_transfer_model": "models",
    "build_model": "models",
    "build_cnn_model": "models",
    "list_models": "models",
    "register_model": "models",
    "model_spec": "models",
    "ModelSpec": "models",
    "BACKBONES": "backbones",
    "ImageNetPreprocessing": "layers",
    "compile_model": "models",
    "get_base": "models",
    "augmentation_layers": "layers",
    "build_augmentation": "layers",
    "mobilenet_v2_preprocessing": "layers",
    "InferenceMode": "layers",
    "Splits": "data",
    "from_directory": "data",
    "load_cats_and_dogs": "data",
    "split_files": "data",
    "build_splits": "data",
    "label_counts": "data",
    "majority_baseline": "data",
    "make_synthetic_dataset": "synthetic",
    "make_stand_in_weights": "weights",
    "train": "training",
    "fine_tune": "training",
    "unfreeze_base": "training",
    "merge_histories": "training",
    "evaluate": "evaluation",
    "wilson_interval": "evaluation",
    "write_model_card": "card",
    "predict": "inference",
    "Report": "evaluation",
    "export": "saving",
    "load_model": "saving",
    "inference_model": "inference",
    "decode_image": "inference",
    "load_images": "inference",
    "image_batches": "inference",
    "ImageClassifier": "models",
    "class_names_of": "models",
    "precision_scope": "models",
    "Predictor": "inference",
    "plot_samples": "plotting",
    "plot_label_counts": "plotting",
    "plot_augmentation": "plotting",
    "plot_history": "plotting",
    "plot_confusion_matrix": "plotting",
    "plot_misclassified": "plotting",
    "plot_gradcam": "plotting",
    "plot_lr_find": "plotting",
    "gradcam": "interpret",
    "lr_find": "lr_finder",
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
    from catdog.backbones import (
        BACKBONES,
    )
    from catdog.card import (
        write_model_card,
    )
    from catdog.data import (
        Splits,
        build_splits,
        from_directory,
        label_counts,
        load_cats_and_dogs,
        majority_baseline,
        split_files,
    )
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
    from catdog.evaluation import (
        Report,
        evaluate,
        wilson_interval,
    )
    from catdog.inference import (
        Predictor,
        decode_image,
        image_batches,
        inference_model,
        load_images,
        predict,
    )
    from catdog.interpret import (
        gradcam,
    )
    from catdog.layers import (
        ImageNetPreprocessing,
        InferenceMode,
        augmentation_layers,
        build_augmentation,
        mobilenet_v2_preprocessing,
    )
    from catdog.lr_finder import (
        lr_find,
    )
    from catdog.models import (
        ImageClassifier,
        ModelSpec,
        build_augmented_model,
        build_baseline_model,
        build_cnn_model,
        build_model,
        build_preprocessed_model,
        build_transfer_model,
        class_names_of,
        compile_model,
        get_base,
        list_models,
        model_spec,
        precision_scope,
        register_model,
    )
    from catdog.plotting import (
        plot_augmentation,
        plot_confusion_matrix,
        plot_gradcam,
        plot_history,
        plot_label_counts,
        plot_lr_find,
        plot_misclassified,
        plot_samples,
    )
    from catdog.saving import (
        export,
        load_model,
    )
    from catdog.synthetic import (
        make_synthetic_dataset,
    )
    from catdog.training import (
        fine_tune,
        merge_histories,
        train,
        unfreeze_base,
    )
    from catdog.weights import (
        make_stand_in_weights,
    )

_SUBMODULES = {
    "backbones", "card", "cli", "data", "distribute", "download", "errors", "evaluation",
    "feature_cache", "inference", "interpret", "io", "layers", "lr_finder", "models",
    "plotting", "saving", "synthetic", "training", "tuning", "weights", "workflow",
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
