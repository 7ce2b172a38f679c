"""Setting a few-shot model's class prototypes (see
[`catdog.models.prototypes`][catdog.models.prototypes]): what ``train`` does for a model
whose head is a [`PrototypeHead`][catdog.models.prototypes.PrototypeHead], in place of
epochs: one pass of the base over the training and validation images, then the class means."""

from __future__ import annotations

import os

import keras
import numpy as np

from catdog._rules import check_class_names
from catdog.data.files import image_files
from catdog.data.images import load_images
from catdog.errors import DatasetError, InvalidArgumentError
from catdog.models.classifier import class_names_of, classifier_from_layers
from catdog.models.confidence import Confidence, confidence_layer, unit_rows
from catdog.models.prototypes import PrototypeHead, prototype_head
from catdog.models.saving import save_model
from catdog.training.feature_cache import Features, extract_split_features, split_transfer_model

ADD_BATCH = 32
"""Images read and run at a time by ``add_class``."""


def set_prototypes(
    model: keras.Model,
    features: Features | None,
    checkpoint: str | os.PathLike | None = None,
    splits=None,
    engine: str = "auto",
    strategy=None,
) -> keras.callbacks.History:
    """Set ``model``'s prototypes from the training images' ``features`` (centred on the
    training and validation images together, the photos at hand) and return a one-epoch
    ``History`` with the training and validation accuracy and loss. ``checkpoint``: where to
    save the model (``.keras``). Without ``features``, they are extracted from ``splits`` on
    ``engine`` (see
    [`extract_split_features`][catdog.training.feature_cache.extract_split_features]).

    Examples:
        ```python
        history = set_prototypes(model, extract_split_features(model, splits))
        ```
    """
    head = prototype_head(model)
    if features is None:
        features = extract_split_features(model, splits, engine=engine, strategy=strategy)
    train_x, _, train_y = features.plain("train")
    validation_x, _, validation_y = features.plain("validation")
    head.set_prototypes(train_x, train_y, centre_from=np.concatenate([train_x, validation_x]))
    history = keras.callbacks.History()
    history.set_model(model)
    history.epoch, history.history = [0], {}
    for prefix, x, y in (("", train_x, train_y), ("val_", validation_x, validation_y)):
        probabilities = keras.ops.convert_to_numpy(head(x.astype("float32")))
        picked = probabilities[np.arange(len(y)), np.asarray(y).astype(int)]
        history.history[f"{prefix}accuracy"] = [float(np.mean(probabilities.argmax(1) == y))]
        history.history[f"{prefix}loss"] = [float(-np.mean(np.log(np.maximum(picked, 1e-12))))]
    if checkpoint is not None:
        save_model(model, checkpoint)
    return history


def add_class(model: keras.Model, images, name: str) -> keras.Model:
    """A new model: ``model`` (a few-shot model, see
    [`build_prototype_model`][catdog.models.prototypes.build_prototype_model]) with one more
    class, ``name``, whose prototype comes from ``images`` (files or folders); nothing else is
    retrained. Its unknown answer keeps its threshold and takes the new images into its
    neighbour bank, so they are not unknown.

    Examples:
        ```python
        with_foxes = add_class(load_model("runs/pets/model.keras"), "photos/foxes", "foxes")
        ```
    """
    head = prototype_head(model)
    if head is None:
        raise InvalidArgumentError(
            "add_class needs a few-shot model (catdog train --model prototypes); retrain other "
            "models with the new class folder."
        )
    names = check_class_names([*(class_names_of(model) or []), name], "the classes")
    files = image_files([images] if isinstance(images, str | os.PathLike) else list(images))
    if not files:
        raise DatasetError(f"No image found in {images!r} for the class {name!r}.")
    extractor, _ = split_transfer_model(model)
    size = tuple(model.input_shape[1:3])
    pooled = np.concatenate([
        extractor.predict(load_images(files[i : i + ADD_BATCH], size), verbose=0)
        for i in range(0, len(files), ADD_BATCH)
    ])  # fmt: skip
    layers = [_grown_head(head, pooled) if layer is head else layer for layer in model.layers]
    confidence = confidence_layer(model)
    if confidence is not None:
        layers[layers.index(confidence)] = _grown_confidence(confidence, pooled, len(names))
    inputs = keras.Input(model.input_shape[1:], name="image")
    return classifier_from_layers([inputs, *layers], name=model.name, class_names=names)


def _grown_head(head: PrototypeHead, pooled: np.ndarray) -> PrototypeHead:
    """``head`` with one more prototype: the new images' unit mean, centred as the others."""
    grown = PrototypeHead(head.num_classes + 1, head.scale, name=head.name, dtype="float32")
    grown.build((None, pooled.shape[1]))
    centre = head.centre.numpy()
    prototype = unit_rows(unit_rows(unit_rows(pooled) - centre).mean(axis=0))
    grown.centre.assign(centre)
    grown.prototypes.assign(np.concatenate([head.prototypes.numpy(), prototype[None]]))
    return grown


def _grown_confidence(layer: Confidence, pooled: np.ndarray, classes: int) -> Confidence:
    """``layer`` for one more class: the same temperature and threshold, the new images'
    embeddings added to a ``"knn"`` bank."""
    if layer.method == "mahalanobis" or (layer.method == "knn" and not layer.embedding):
        raise InvalidArgumentError(
            "The model's unknown answer keeps class means (method='mahalanobis'): calibrate "
            "the model with the new class instead (catdog.calibrate)."
        )
    bank = layer.bank.numpy() if layer.method == "knn" else np.zeros((0, pooled.shape[1]))
    grown = Confidence(
        layer.method, classes, len(bank) + len(pooled) if layer.method == "knn" else 0,
        layer.k, layer.coverage, layer.embedding, name=layer.name,
    )  # fmt: skip
    grown.build((None, pooled.shape[1]))
    grown.temperature.assign(layer.temperature.numpy())
    grown.threshold.assign(layer.threshold.numpy())
    if layer.method == "knn":  # the embedding of an averaged feature map is its unit mean
        grown.bank.assign(np.concatenate([bank, unit_rows(pooled)]).astype("float32"))
    return grown
