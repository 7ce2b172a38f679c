"""Frozen-feature caching: train a transfer model's head on features computed once.

With a frozen base, every epoch of the plain recipe recomputes the same MobileNetV2 features.
Here the base runs once per image (plus once per augmented copy), the pooled features are
kept in memory, and only the head trains on them. The head's layers are the model's own, so
the result is the same end-to-end model: it saves, loads and predicts like any other.

The base can run on LiteRT instead of TensorFlow (``engine="litert"``): about twice the
images per second on a CPU, features equal within 1e-4, for a one-off conversion that is
cached on disk (see [`catdog.deploy.predict.Predictor`][catdog.deploy.predict.Predictor]).
[`prepare_extraction_engine`][catdog.training.feature_cache.prepare_extraction_engine] picks it
when it pays off, and converts the base then.

The trade-off: on-the-fly augmentation draws new random flips/rotations every epoch;
cached features see only the ``augment_copies`` augmented versions drawn up front (plus the
original). A few copies keep most of augmentation's regularising effect on small heads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from catdog._rules import ENGINES, check_choice, check_int
from catdog.data.pipelines import Splits
from catdog.deploy.litert import LiteRTModel, cached_litert_file, litert_cache_path
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import (
    classifier_from_layers,
    get_base,
    is_augmentation_layer,
    is_multi_label,
)
from catdog.models.confidence import Confidence, embedding_of

logger = logging.getLogger("catdog")


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
    layers = [layer for layer in model.layers if not isinstance(layer, Confidence)]
    position = [layer.name for layer in layers].index("global_pool")  # after the base
    pool = layers[position]
    extractor = keras.Sequential(
        [keras.Input(model.input_shape[1:]), *layers[: position + 1]], name="feature_extractor"
    )
    head = classifier_from_layers(  # compiled with the loss of the model's head
        [keras.Input(pool.output.shape[1:]), *layers[position + 1 :]],
        name="head",
        class_names=None,
        multi_label=is_multi_label(model),
    )
    return extractor, head


@keras.saving.register_keras_serializable(package="catdog")
class PoolAndEmbed(keras.layers.Layer):
    """A base's feature map as the head's pooled features and the image's embedding (see
    [`embedding_of`][catdog.models.confidence.embedding_of]) side by side: both from one
    forward pass of the base."""

    def __init__(self, pooling: str = "max", **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling

    def call(self, maps):
        maps = ops.cast(maps, "float32")
        pooled = ops.max(maps, axis=(1, 2)) if self.pooling == "max" else ops.mean(maps, (1, 2))
        return ops.concatenate([pooled, embedding_of(maps)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "pooling": self.pooling}


def embedding_extractor(model: keras.Model) -> keras.Model:
    """The extractor of [`split_transfer_model`][catdog.training.feature_cache.split_transfer_model]
    whose output is the head's pooled features and the embedding side by side (``2 x``
    channels): one pass of the base gives both.

    Examples:
        ```python
        both = embedding_extractor(model)(images)  # (n, 2 * channels)
        ```
    """
    extractor, _ = split_transfer_model(model)
    *front, pool = extractor.layers
    pooling = "max" if type(pool).__name__ == "GlobalMaxPooling2D" else "avg"
    return keras.Sequential(
        [keras.Input(model.input_shape[1:]), *front, PoolAndEmbed(pooling, name="pool_and_embed")],
        name="feature_extractor",
    )


@dataclass
class Features:
    """The base's features of a run's images, computed once and passed to whoever needs them:
    cached-feature training (``head``), calibration and the unknown answer (``head`` and
    ``embeddings``), a run's embeddings file.

    ``head[split]``: the features as the head pools them, ``labels[split]`` theirs; for
    ``"train"`` the plain pass first, then each of ``copies`` augmented passes.
    ``embeddings[split]``: the embeddings of the plain pass (unit rows). ``engine`` ran the
    base (``"tensorflow"`` or ``"litert"``). A run's features hold its test split too, so that
    calibration and evaluation score it without another pass of the base.

    Examples:
        ```python
        features = extract_split_features(model, splits)
        train(model, splits, cache_features=True, features=features)
        calibrate(model, splits, features=features)
        ```
    """

    head: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    copies: int = 0
    engine: str = "tensorflow"

    def plain(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(head features, embeddings, labels)`` of the plain pass over ``split``."""
        count = len(self.embeddings[split])
        return self.head[split][:count], self.embeddings[split], self.labels[split][:count]


def extract_split_features(
    model: keras.Model, splits, copies: int = 0, *, engine: str = "auto", strategy=None
) -> Features:
    """The [`Features`][catdog.training.feature_cache.Features] of the training, validation
    and (when it has any) test images of ``splits`` (catdog ``Splits``, or a
    ``(train, validation)`` pair of datasets): one pass of the base per image (and per augmented
    copy of a training image), on the engine that
    [`prepare_extraction_engine`][catdog.training.feature_cache.prepare_extraction_engine]
    picks.

    Examples:
        ```python
        features = extract_split_features(model, splits, copies=2)
        ```
    """
    check_int("augment_copies", copies, minimum=0)
    extractor = embedding_extractor(model)
    if isinstance(splits, Splits):
        datasets = {"train": splits.train, "validation": splits.validation}
        if splits.files["test"] and splits.test is not None:
            datasets["test"] = splits.test
        passes = sum(len(splits.files[s]) for s in datasets) + len(splits.files["train"]) * copies
    else:
        datasets, passes = dict(zip(("train", "validation"), tuple(splits), strict=True)), 0
    engine = prepare_extraction_engine(extractor, passes, engine, strategy=strategy)
    found = Features(copies=copies, engine=engine)
    for split, images in datasets.items():
        both, labels = extract_features(
            extractor, images, copies if split == "train" else 0, engine=engine
        )
        width = both.shape[1] // 2
        plain = len(labels) // (1 + (copies if split == "train" else 0))
        if split == "train" and not has_augmentation(extractor):
            plain = len(labels)
        found.head[split] = np.ascontiguousarray(both[:, :width])
        found.embeddings[split] = np.ascontiguousarray(both[:plain, width:])
        found.labels[split] = labels
    return found


def has_augmentation(model: keras.Model) -> bool:
    """True when the model contains random augmentation layers."""
    return any(is_augmentation_layer(layer) for layer in model.layers)


LITERT_BREAK_EVEN_PASSES = 5000
"""Forward passes of the base from which extracting features on LiteRT pays off.

Interpolated, not measured: in benchmarks/bench_training.py's run on 2 CPU cores
(MobileNetV2 at 160x160, 2,000 training + 1,000 validation images, 20 epochs; figures in
benchmarks/results/training.json), LiteRT extraction shortened the whole run with 2
augmented copies (7,000 passes) and not without them (3,000 passes, the base already
converted), although the extraction alone runs faster; 5,000 lies between the two. The
conversion itself is cached on disk."""


def prepare_extraction_engine(
    extractor: keras.Model, passes: int, engine: str = "auto", *, strategy=None
) -> str:
    """Choose the engine (``"tensorflow"``/``"litert"``) that extracts ``passes`` images'
    features and, for LiteRT, convert the base now: that can take seconds (cached on disk).

    ``"auto"`` picks LiteRT for a float32 base on one device when the base was converted
    before (by any run: the conversion is cached on disk by the base's weights) or when
    ``passes`` reach
    [`LITERT_BREAK_EVEN_PASSES`][catdog.training.feature_cache.LITERT_BREAK_EVEN_PASSES] (then it
    converts the base here, and stays on TensorFlow, with a warning, if that fails);
    otherwise, and for ``"tensorflow"``, TensorFlow.

    Examples:
        ```python
        prepare_extraction_engine(extractor, passes=3 * 2000 + 1000)
        # 'litert'
        ```
    """
    check_choice("engine", engine, ENGINES)
    if engine != "auto":
        return engine
    _, back = _front_and_back(extractor)
    if strategy is not None or back.layers[0].compute_dtype != "float32":
        return "tensorflow"
    if (
        passes < LITERT_BREAK_EVEN_PASSES
        and not litert_cache_path(back, probabilities=False).exists()
    ):
        return "tensorflow"
    try:  # convert now: a base LiteRT cannot convert stays on TensorFlow
        cached_litert_file(back, probabilities=False)
    except Exception as error:  # the converter raises many types
        logger.warning(
            "LiteRT could not convert the base (%s); extracting features with TensorFlow.",
            type(error).__name__,
        )
        return "tensorflow"
    return "litert"


def _front_and_back(extractor: keras.Model):
    """(layers before the base, a model of the base and its pooling) of an extractor."""
    layers = extractor.layers
    position = [layer.name for layer in layers].index("base")
    # fixed names: the LiteRT cache key is a hash of this model's config
    features_input = keras.Input(layers[position].input.shape[1:], name="base_input")
    back = keras.Sequential([features_input, *layers[position:]], name="base_features")
    return layers[:position], back


def _runners(extractor: keras.Model, engine: str):
    """(plain pass, augmented pass): functions from a batch of pixels to features."""
    import tensorflow as tf

    if engine != "litert":
        plain = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
        augmented = tf.function(lambda x: extractor(x, training=True), reduce_retracing=True)
        return (lambda x: plain(x).numpy()), (lambda x: augmented(x).numpy())

    front, back = _front_and_back(extractor)
    base = LiteRTModel(cached_litert_file(back, probabilities=False))

    def through(training: bool):
        def run_front(x):
            for layer in front:  # preprocessing and augmentation, in TensorFlow
                x = layer(x, training=training)
            return x

        traced = tf.function(run_front, reduce_retracing=True)
        return lambda x: base(traced(x).numpy()).astype(np.float32)

    return through(False), through(True)


def extract_features(extractor, dataset, copies: int = 0, *, engine: str = "tensorflow"):
    """Features and labels of every image in ``dataset``, plus ``copies`` augmented passes.

    Each pass reads images and labels together, so a reshuffling dataset stays aligned.
    Returns ``(features, labels)`` as NumPy arrays: the plain pass first, then each augmented
    pass (the extractor's augmentation layers drawn anew for every pass). With
    ``engine="litert"`` the base and its pooling run on LiteRT (converted once, cached), the
    preprocessing and augmentation in TensorFlow.

    Examples:
        ```python
        x, y = extract_features(extractor, splits.validation)
        ```
    """
    plain, augmented = _runners(extractor, engine)
    passes = [plain] + ([augmented] * copies if has_augmentation(extractor) else [])
    features, labels = [], []
    for run in passes:
        for images, batch_labels in dataset:
            features.append(run(images))
            labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)
