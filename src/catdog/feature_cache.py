"""Frozen-feature caching: train a transfer model's head on features computed once.

With a frozen base, every epoch of the plain recipe recomputes the same MobileNetV2 features.
Here the base runs once per image (plus once per augmented copy), the pooled features are
kept in memory, and only the head trains on them. The head's layers are the model's own, so
the result is the same end-to-end model: it saves, loads and predicts like any other.

The trade-off: on-the-fly augmentation draws new random flips/rotations every epoch;
cached features see only the ``augment_copies`` augmented versions drawn up front (plus the
original). A few copies keep most of augmentation's regularising effect on small heads.
"""

from __future__ import annotations

import keras
import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.models import get_base, is_augmentation_layer


def split_transfer_model(model: keras.Model):
    """Split a frozen-base transfer model into ``(extractor, head)``.

    ``extractor`` maps 0..255 pixels to pooled base features (preprocessing, augmentation,
    base, global pooling; augmentation acts only when called with ``training=True``) and
    ``head`` maps features to class scores. Both share the model's layers and weights.

    Examples:
        ```python
        extractor, head = split_transfer_model(model)
        ```
    """
    base = get_base(model)
    if any(w.trainable for w in base.weights):
        raise InvalidArgumentError(
            "Feature caching needs a frozen base (the default, base_trainable=False); "
            "fine-tune without cache_features."
        )
    if not isinstance(model, keras.Sequential):
        raise InvalidArgumentError("Feature caching needs a Sequential transfer model.")
    layers = model.layers
    position = layers.index(model.get_layer("base"))
    pool = layers[position + 1]
    extractor = keras.Sequential(
        [keras.Input(model.input_shape[1:]), *layers[: position + 2]], name="feature_extractor"
    )
    head = keras.Sequential(
        [keras.Input(pool.output.shape[1:]), *layers[position + 2 :]], name="head"
    )
    return extractor, head


def has_augmentation(model: keras.Model) -> bool:
    """True when the model contains random augmentation layers."""
    return any(is_augmentation_layer(layer) for layer in model.layers)


def extract_features(extractor, dataset, copies: int = 0):
    """Features and labels of every image in ``dataset``, plus ``copies`` augmented passes.

    Each pass reads images and labels together, so a reshuffling dataset stays aligned.
    Returns ``(features, labels)`` as NumPy arrays: the plain pass first, then each augmented
    pass (the extractor's augmentation layers drawn anew for every pass).

    Examples:
        ```python
        x, y = extract_features(extractor, splits.validation)
        ```
    """
    import tensorflow as tf

    plain = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    augmented = tf.function(lambda x: extractor(x, training=True), reduce_retracing=True)
    passes = [plain] + ([augmented] * copies if has_augmentation(extractor) else [])
    features, labels = [], []
    for run in passes:
        for images, batch_labels in dataset:
            features.append(run(images).numpy())
            labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)
