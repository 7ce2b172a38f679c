"""How sure a model is: [`Confidence`][catdog.models.confidence.Confidence], the layer that keeps a
model's temperature (calibrated probabilities) and its out-of-distribution score and threshold
(the ``unknown`` answer), and the inference form that outputs both.

The layer sits in the model's own layers, where its features are (see
[`feature_position`][catdog.models.confidence.feature_position]), and passes them through
unchanged: a model
trains, saves and loads as before, and a ``.keras`` file copied alone keeps its temperature,
its score's statistics and its threshold.
[`confidence_outputs`][catdog.models.confidence.confidence_outputs] is what predictions and
every export run: the calibrated probabilities and, when the model has a score, the
``ood_score`` of each image. A model saved before catdog had the layer has none,
and predicts exactly as it did.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from catdog._rules import (  # noqa: F401 (is_unknown: also its public path here)
    check_choice,
    check_finite_threshold,
    check_int,
    is_unknown,
)
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import (
    ImageClassifier,
    inference_model,
    is_multi_label,
    outputs_logits,
    probabilities,
)

OOD_METHODS = ("mahalanobis", "knn", "msp")
"""The out-of-distribution scores a model can carry: the Mahalanobis distance of its features to
the nearest class mean (shared covariance), one minus the cosine similarity to the ``k``-th
nearest training feature, or one minus the maximum softmax probability. Higher: less like the
training images."""
CONFIDENCE_LAYER = "confidence"
"""The name of the [`Confidence`][catdog.models.confidence.Confidence] layer in a model."""


@keras.saving.register_keras_serializable(package="catdog")
class Confidence(keras.layers.Layer):
    """The identity on a model's features that keeps how sure the model is.

    Its non-trainable weights: ``temperature`` (probabilities ``p`` become
    ``softmax(log(p) / temperature)``, which is ``softmax(logits / temperature)``: the same
    argmax, honest confidences), ``threshold`` (an ``ood_score`` above it is ``unknown``) and the
    score's statistics (``method="mahalanobis"``: the class ``means`` and the shared
    ``precision`` matrix; ``"knn"``: a ``bank`` of L2-normalised training features). Called
    plainly it returns its input (its place in the model); ``output="probabilities"`` calibrates
    probabilities, ``output="score"`` scores ``[features, probabilities]``.

    Args:
        method: ``"mahalanobis"``, ``"knn"``, ``"msp"`` or ``None`` (calibration only).
        num_classes: the model's classes (the number of means).
        bank_size: the number of stored features (``"knn"``).
        k: which nearest neighbour's distance is the score (``"knn"``).
        coverage: the share of validation images the threshold accepts (for the record).
        embedding: score the image's embedding (its features averaged over the image and
            scaled to unit length, see [`embedding_of`][catdog.models.confidence.embedding_of])
            rather than the features' maximum over the image; catdog's transfer models do.

    Examples:
        >>> import numpy as np
        >>> layer = Confidence()
        >>> layer.build((None, 4))
        >>> _ = layer.temperature.assign(2.0)
        >>> probs = np.array([[0.9, 0.1]], "float32")
        >>> [round(float(p), 3) for p in layer(probs, output="probabilities")[0]]
        [0.75, 0.25]
    """

    def __init__(
        self,
        method: str | None = None,
        num_classes: int = 2,
        bank_size: int = 0,
        k: int = 1,
        coverage: float | None = None,
        embedding: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", CONFIDENCE_LAYER)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.method = check_choice("method", method, (None, *OOD_METHODS))
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.bank_size = check_int("bank_size", bank_size, minimum=0)
        self.k = check_int("k", k)
        self.coverage = None if coverage is None else float(coverage)
        self.embedding = bool(embedding)
        if method == "knn" and not 1 <= self.k <= self.bank_size:
            raise InvalidArgumentError(f"k must be in 1..bank_size ({bank_size}), got {k!r}.")

    def build(self, input_shape) -> None:
        dim = int(input_shape[-1])

        def weight(name, shape, initializer="zeros"):
            return self.add_weight(shape=shape, initializer=initializer, trainable=False, name=name)

        self.temperature = weight("temperature", (), "ones")
        self.threshold = weight("threshold", ())
        if self.method == "mahalanobis":
            self.means = weight("means", (self.num_classes, dim))
            self.precision = weight("precision", (dim, dim))
        elif self.method == "knn":
            self.bank = weight("bank", (self.bank_size, dim))
        self.built = True

    def call(self, inputs, output=None):
        if output is None:
            return inputs
        if output == "probabilities":
            log_p = ops.log(ops.clip(ops.cast(inputs, "float32"), 1e-30, 1.0))
            return ops.softmax(log_p / self.temperature, axis=-1)
        features, probs = (ops.cast(x, "float32") for x in inputs)
        features = embedding_of(features) if self.embedding else pooled(features)
        return past_any_threshold(self._score(features, probs), probs)

    def _score(self, features, probs):
        if self.method == "msp":
            return 1.0 - ops.max(probs, axis=-1)
        if self.method == "knn":
            unit = features / ops.maximum(ops.norm(features, axis=-1, keepdims=True), 1e-12)
            nearest, _ = ops.top_k(ops.matmul(unit, ops.transpose(self.bank)), self.k)
            return 1.0 - nearest[:, self.k - 1]
        distances = []
        for c in range(self.num_classes):  # few classes: one (n, d) x (d, d) product each
            diff = features - self.means[c]
            distances.append(ops.sum(ops.matmul(diff, self.precision) * diff, axis=-1))
        return ops.sqrt(ops.maximum(ops.min(ops.stack(distances, axis=-1), axis=-1), 0.0))

    def compute_output_spec(self, inputs, output=None):
        if output is None or output == "probabilities":
            return keras.KerasTensor(inputs.shape, "float32")
        return keras.KerasTensor((inputs[0].shape[0],), "float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "method": self.method, "num_classes": self.num_classes,
                "bank_size": self.bank_size, "k": self.k, "coverage": self.coverage,
                "embedding": self.embedding}  # fmt: skip

    def describe(self) -> dict:
        """Its settings and values as plain data: temperature, method, threshold, coverage.

        Examples:
            ```python
            confidence_layer(model).describe()
            # {'temperature': 1.7, 'method': 'mahalanobis', 'threshold': 41.2, 'coverage': 0.99}
            ```
        """
        return {
            "temperature": float(self.temperature.numpy()),
            "method": self.method,
            "threshold": float(self.threshold.numpy()) if self.method else None,
            "coverage": self.coverage,
        }


def past_any_threshold(scores, probs):
    """``scores``, with ``+inf`` for an image whose score or probabilities are not finite
    numbers (NaN or infinite pixels, an overflow): such an image is ``unknown`` under every
    threshold, in every engine and export, since the rule is inside the model.

    Examples:
        >>> import numpy as np
        >>> nan = float("nan")
        >>> scores = np.array([0.5, nan, 0.5], "float32")
        >>> probs = np.array([[1, 0], [1, 0], [nan, nan]], "float32")
        >>> np.asarray(past_any_threshold(scores, probs)).tolist()
        [0.5, inf, inf]
    """
    total = ops.abs(scores) + ops.sum(ops.abs(probs), axis=-1)  # NaN and inf carry through
    return ops.where(total < float("inf"), scores, float("inf"))


def confidence_layer(model) -> Confidence | None:
    """The model's [`Confidence`][catdog.models.confidence.Confidence] layer, or ``None``.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> confidence_layer(build_baseline_model(input_shape=(32, 32, 3))) is None
        True
    """
    if not isinstance(model, keras.Sequential):
        return None
    return next((layer for layer in model.layers if isinstance(layer, Confidence)), None)


_FLATTENING = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def feature_position(layers: list) -> int:
    """The index in ``layers`` (a model's, without its Confidence layer) after which its
    features are: a transfer model's ``base`` (its feature map, scored by its embedding, see
    [`embedding_of`][catdog.models.confidence.embedding_of]), else the last feature maps
    before the head flattens them (scored by their maximum over the image, see
    [`pooled`][catdog.models.confidence.pooled]), else the layer before the output layer.

    A two-class head's own hidden layer keeps little but the two classes, so an image unlike
    both looks like one of them there; the feature maps before it still tell it apart.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> layers = build_baseline_model(input_shape=(32, 32, 3)).layers
        >>> layers[feature_position(layers)].name
        'pool_2'
    """
    kept = [layer for layer in layers if not isinstance(layer, Confidence)]
    names = [layer.name for layer in kept]
    if "base" in names:
        return names.index("base")
    flat = next((i for i, each in enumerate(kept) if type(each).__name__ in _FLATTENING), 0)
    return flat - 1 if flat > 0 else len(names) - 2


def unit_rows(x) -> np.ndarray:
    """The rows of ``x`` scaled to unit length, as float32 (a zero row stays zero): the NumPy
    twin of [`embedding_of`][catdog.models.confidence.embedding_of] for pooled features.

    Examples:
        >>> unit_rows([[3.0, 4.0], [0.0, 0.0]]).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embedding_of(features):
    """The embedding of feature maps ``(n, h, w, c)`` (or pooled features ``(n, c)``): their
    average over the image, scaled to unit length, ``(n, c)``. One vector per image for the
    similarity questions (the unknown answer, ``catdog.embed``, similar images); chosen on real
    photos (benchmarks/bench_unknown.py): it tells foreign photos apart far better than the
    maximum over the image.

    Examples:
        >>> import numpy as np
        >>> maps = np.ones((1, 2, 2, 4), "float32")
        >>> np.round(np.asarray(embedding_of(maps)), 2).tolist()
        [[0.5, 0.5, 0.5, 0.5]]
    """
    features = ops.cast(features, "float32")
    if len(features.shape) == 4:
        features = ops.mean(features, axis=(1, 2))
    return features / ops.maximum(ops.norm(features, axis=-1, keepdims=True), 1e-12)


@keras.saving.register_keras_serializable(package="catdog")
class ImageEmbedding(keras.layers.Layer):
    """The layer form of [`embedding_of`][catdog.models.confidence.embedding_of]: feature maps
    in, one unit-length embedding per image out (float32)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, features):
        return embedding_of(features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def uses_embedding(layers) -> bool:
    """True when a model with these layers scores its unknown answer on the embedding: a
    model with a pretrained ``base`` (the base's feature map is where its features are)."""
    return "base" in [layer.name for layer in layers]


def pooled(features):
    """Feature maps ``(n, h, w, c)`` as ``(n, c)`` by their maximum over the image (an
    unusual pattern anywhere shows); features ``(n, c)`` unchanged."""
    return ops.max(features, axis=(1, 2)) if len(features.shape) == 4 else features


def attach_confidence(model: keras.Model, layer: Confidence) -> keras.Model:
    """Put ``layer`` into ``model`` at its features (replacing an earlier one), in place.

    Examples:
        ```python
        attach_confidence(model, Confidence())
        ```
    """
    if not isinstance(model, ImageClassifier):
        raise InvalidArgumentError(
            f"{model.name!r} is not a catdog model (an ImageClassifier): calibration and the "
            "unknown answer need one. Build it with catdog (build_model, or a factory)."
        )
    existing, shape = confidence_layer(model), model.input_shape
    keep = feature_position(model.layers) + 1  # an earlier layer sits there or after it
    popped = [model.pop(rebuild=False) for _ in range(len(model.layers) - keep)]
    for each in [layer, *(p for p in reversed(popped) if p is not existing)]:
        model.add(each, rebuild=False)
    model.build(shape)  # builds the layer on the features' shape
    return model


def confidence_outputs(model: keras.Model, images) -> dict:
    """``{"probabilities": ..., "ood_score": ...}`` of a batch, in inference mode.

    The calibrated probabilities (``"ood_score"`` only for a model with a score): what
    predictions and every export compute. Works on tensors and on ``keras.Input``.

    Examples:
        ```python
        confidence_outputs(model, images)["probabilities"].shape
        # TensorShape([8, 2])
        ```
    """
    layer = confidence_layer(model)
    if layer is None:  # as before catdog had the layer
        return {
            "probabilities": probabilities(model, inference_model(model)(images, training=False))
        }
    outputs = images
    features = None
    for each in inference_model(model).layers:
        outputs = each(outputs, training=False)
        if each is layer:
            features = outputs
    probs = layer(probabilities(model, outputs), output="probabilities")
    if layer.method is None:
        return {"probabilities": probs}
    return {"probabilities": probs, "ood_score": layer([features, probs], output="score")}


def probability_model(model: keras.Model) -> keras.Model:
    """The model without augmentation, ending in probabilities (a softmax after logits; a
    sigmoid per class for a multi-label model).

    What every export and the LiteRT engine run. A model with a
    [`Confidence`][catdog.models.confidence.Confidence] layer outputs calibrated probabilities
    and, when it has an out-of-distribution score, the dict
    ``{"probabilities": ..., "ood_score": ...}``
    ([`confidence_outputs`][catdog.models.confidence.confidence_outputs]).

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> probability_model(build_baseline_model(classifier_activation=None)).layers[-1].name
        'probabilities'
    """
    if confidence_layer(model) is not None:  # calibrated, and with its score when it has one
        inputs = keras.Input(shape=model.input_shape[1:], name="image")
        outputs = confidence_outputs(model, inputs)
        outputs = outputs if len(outputs) > 1 else outputs["probabilities"]
        return keras.Model(inputs, outputs, name=f"{model.name}_probabilities")
    without_augmentation = inference_model(model)
    if not outputs_logits(model):
        return without_augmentation
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    squash = (
        keras.layers.Activation("sigmoid", name="probabilities")  # each class on its own
        if is_multi_label(model)
        else keras.layers.Softmax(name="probabilities")
    )
    outputs = squash(without_augmentation(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_probabilities")


def check_confidence(model, source: str) -> None:
    """Refuse a model whose temperature or unknown threshold is not a finite number (a damaged
    or hand-edited file): with a NaN threshold no image would ever be ``unknown``.

    Examples:
        ```python
        check_confidence(load_model("model.keras"), "model.keras")
        ```
    """
    layer = confidence_layer(model)
    if layer is None:
        return
    found = layer.describe()
    check_finite_threshold(found["threshold"], source)
    if not (np.isfinite(found["temperature"]) and found["temperature"] > 0):
        raise InvalidArgumentError(
            f"{source!r} has a calibration temperature of {found['temperature']}, not a "
            "positive number: the file is damaged or was edited. Calibrate the model again "
            "(catdog.calibrate) or retrain it."
        )


def unknown_threshold(model) -> float | None:
    """The ``ood_score`` above which ``model`` answers ``unknown``, or ``None`` (no score).

    A Keras model's from its [`Confidence`][catdog.models.confidence.Confidence] layer; a
    [`LiteRTModel`][catdog.deploy.litert.LiteRTModel]'s from its metadata.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> unknown_threshold(build_baseline_model(input_shape=(32, 32, 3))) is None
        True
    """
    if not isinstance(model, keras.Model):
        return getattr(model, "threshold", None)
    layer = confidence_layer(model)
    return layer.describe()["threshold"] if layer is not None else None
