"""Calibrating a trained model and giving it an ``unknown`` answer:
[`calibrate`][catdog.training.calibration.calibrate] fits temperature scaling on the validation
split (one scalar, minimising the negative log-likelihood), the statistics of an
out-of-distribution score on the training split's features, and the score's threshold on the
validation split for a stated coverage, and puts them into the model (its
[`Confidence`][catdog.models.confidence.Confidence] layer)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import (
    DEFAULT_COVERAGE,
    check_choice,
    check_coverage,
    check_single_label,
    check_single_label_data,
)
from catdog.data.pipelines import Splits
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import ImageClassifier, inference_model, probabilities
from catdog.models.confidence import (
    OOD_METHODS,
    Confidence,
    attach_confidence,
    embedding_of,
    feature_position,
    pooled,
    uses_embedding,
)
from catdog.report.reliability import calibration_metrics
from catdog.training.feature_cache import Features
from catdog.training.neighbours import conformal_quantile, knn_bank, out_of_fold_knn_scores

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("catdog")

DEFAULT_METHOD = "knn"
"""The out-of-distribution score [`calibrate`][catdog.training.calibration.calibrate] fits by
default: the cosine distance of an image's embedding to its ``DEFAULT_K``-th nearest training
image. Chosen on real photos (benchmarks/bench_unknown.py, the calibration guide): of the
scores compared it caught the most foreign photos at 2% of held-out cats and dogs answered
unknown."""
DEFAULT_K = 5
"""Which nearest training image's distance is the ``"knn"`` score (chosen with the method)."""
SHRINKAGE = 0.1
"""How far the Mahalanobis covariance is pulled towards a multiple of the identity (fewer
images than feature dimensions leave it singular otherwise)."""
TEMPERATURE_RANGE = (0.05, 20.0)
"""The temperatures the fit searches."""
FEW_IMAGES = 50
"""Calibration on fewer validation images than this is rough: it warns."""
SCORE_NOISE = 1e-3
"""Added to a threshold (and ``1e-4`` of it): a score that differs only by float noise
(another engine, another batch size, an image that is also in the training bank) is never
past the threshold because of it."""


@dataclass
class Calibration:
    """What [`calibrate`][catdog.training.calibration.calibrate] fitted, and what it changed.

    ``metrics[split]["before"|"after"]`` holds
    [`calibration_metrics`][catdog.report.reliability.calibration_metrics] (ECE, NLL, Brier) of
    the validation split (where the temperature was fitted) and of the test split (held out);
    ``coverage_validation`` is the share of validation images the threshold accepts (for
    ``"knn"``, whose bank holds the validation images: the share of out-of-fold scores);
    ``probabilities[split]`` the ``(before, after, labels)`` arrays, for figures, and
    ``scores[split]`` the unknown answer's scores after calibration (for a model with a score),
    so that a run's evaluation needs no second pass over the test images.
    """

    temperature: float
    method: str | None
    threshold: float | None
    coverage: float | None
    coverage_validation: float | None
    metrics: dict
    seconds: float
    probabilities: dict = field(default_factory=dict, repr=False)
    scores: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """As plain data (what a run's ``config.json`` and ``report.json`` record)."""
        return {k: v for k, v in asdict(self).items() if k not in ("probabilities", "scores")}

    def __str__(self) -> str:
        lines = [f"temperature: {self.temperature:.3f}"]
        for split, found in self.metrics.items():
            before, after = found["before"], found["after"]
            lines.append(
                f"{split}: ECE {before['ece']:.4f} -> {after['ece']:.4f}, NLL "
                f"{before['nll']:.4f} -> {after['nll']:.4f}, Brier {before['brier']:.4f} -> "
                f"{after['brier']:.4f}"
            )
        if self.method:
            lines.append(
                f"unknown: {self.method} score > {self.threshold:.4g} (accepts "
                f"{self.coverage_validation:.1%} of "
                f"{'known images, out of fold' if self.method == 'knn' else 'validation images'}"
                f"; asked {self.coverage:.1%})"
            )
        return "\n".join(lines)


def log_probabilities(probs) -> np.ndarray:
    """``log(p)``, clipped as the model's [`Confidence`][catdog.models.confidence.Confidence]
    layer clips it."""
    return np.log(np.clip(np.asarray(probs, np.float64), 1e-30, 1.0))


def scaled(probs, temperature: float) -> np.ndarray:
    """``softmax(log(p) / temperature)``: the calibrated probabilities, in NumPy.

    Examples:
        >>> scaled([[0.9, 0.1]], 2.0).round(3).tolist()
        [[0.75, 0.25]]
    """
    z = log_probabilities(probs) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(probs, labels) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``.

    A golden-section search over ``log(T)`` in
    [`TEMPERATURE_RANGE`][catdog.training.calibration.TEMPERATURE_RANGE] (the NLL is convex in
    ``1/T``): a few milliseconds.

    Examples:
        >>> probs = [[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]]
        >>> round(fit_temperature(probs, [0, 0, 1, 1]), 2) > 1  # overconfident: softened
        True
    """
    z = log_probabilities(probs)
    labels = np.asarray(labels).astype(int).reshape(-1)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        top = s.max(axis=1)
        return float(np.mean(top + np.log(np.exp(s - top[:, None]).sum(axis=1)) - s[rows, labels]))

    low, high = np.log(TEMPERATURE_RANGE)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(a) <= nll(b):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def feature_pass(model, dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, uncalibrated probabilities, labels)`` of every image of ``dataset``.

    The features are where the model's [`Confidence`][catdog.models.confidence.Confidence]
    layer sits ([`feature_position`][catdog.models.confidence.feature_position]).

    Examples:
        ```python
        features, probs, labels = feature_pass(model, splits.validation)
        ```
    """
    import tensorflow as tf

    layers = [each for each in inference_model(model).layers if not isinstance(each, Confidence)]
    cut = feature_position(layers) + 1
    scored = embedding_of if uses_embedding(layers) else pooled

    def run(images):
        x = images
        for each in layers[:cut]:
            x = each(x, training=False)
        features = scored(tf.cast(x, tf.float32))
        for each in layers[cut:]:
            x = each(x, training=False)
        return features, probabilities(model, x)

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    traced = tf.function(run, input_signature=[spec])
    found = [(*(t.numpy() for t in traced(x)), np.asarray(y).reshape(-1)) for x, y in dataset]
    if not found:
        raise InvalidArgumentError("calibrate needs a non-empty dataset.")
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def head_pass(model, head, embeddings, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(embeddings, uncalibrated probabilities, labels)`` from a transfer model's features
    computed before (see [`Features`][catdog.training.feature_cache.Features]): the layers after
    the pooling run on ``head``; as [`feature_pass`][catdog.training.calibration.feature_pass]
    returns them."""
    layers = [each for each in inference_model(model).layers if not isinstance(each, Confidence)]
    after_pool = [layer.name for layer in layers].index("global_pool") + 1
    head = np.asarray(head, np.float32)
    outputs = []
    for start in range(0, len(head), 256):
        x = head[start : start + 256]
        for each in layers[after_pool:]:
            x = each(x, training=False)
        outputs.append(np.asarray(probabilities(model, x)))
    probs = np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]))
    return np.asarray(embeddings, np.float32), probs, np.asarray(labels).reshape(-1)


def gaussian_statistics(features, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(class means, shared precision matrix)`` of features, the covariance shrunk by
    [`SHRINKAGE`][catdog.training.calibration.SHRINKAGE] towards a multiple of the identity."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels).astype(int)
    overall = features.mean(axis=0)
    means = np.stack([
        features[labels == c].mean(axis=0) if np.any(labels == c) else overall
        for c in range(num_classes)
    ])  # fmt: skip
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    scale = np.trace(covariance) / len(covariance) or 1.0
    shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * scale * np.eye(len(covariance))
    return means.astype(np.float32), np.linalg.inv(shrunk).astype(np.float32)


def _check(model, splits, unknown_coverage, method: str) -> None:
    if not isinstance(splits, Splits):
        raise InvalidArgumentError(
            f"calibrate needs catdog Splits (from_directory, build_splits), got "
            f"{type(splits).__name__}."
        )
    if not isinstance(model, ImageClassifier):
        raise InvalidArgumentError(
            f"{model.name!r} is not a catdog model (an ImageClassifier); calibrate needs one."
        )
    check_single_label(model, "calibrate")
    check_single_label_data(splits, "calibrate")
    check_coverage("unknown_coverage", unknown_coverage)
    check_choice("method", method, OOD_METHODS)
    if not splits.files["validation"]:
        raise InvalidArgumentError("calibrate needs a validation split with images.")


def calibrate(
    model: keras.Model,
    splits: Splits,
    *,
    temperature: bool = True,
    unknown_coverage: float | None = DEFAULT_COVERAGE,
    method: str = DEFAULT_METHOD,
    k: int = DEFAULT_K,
    features: Features | None = None,
) -> Calibration:
    """Fit how sure ``model`` is on ``splits`` and keep it inside the model, in place.

    The temperature minimises the validation split's negative log-likelihood (``temperature=
    False`` keeps 1: no calibration); the ``method``'s score (see
    [`OOD_METHODS`][catdog.models.confidence.OOD_METHODS]) is fitted on the training split's
    features (a transfer model's: the embedding of each image, see
    [`embedding_of`][catdog.models.confidence.embedding_of]), and its threshold accepts
    ``unknown_coverage`` of the images like the training images (``None``: no ``unknown``
    answer): for ``"knn"`` the conformal quantile of out-of-fold scores of the training images
    (see [`knn_threshold`][catdog.training.neighbours.knn_threshold]), for the others the
    quantile of the validation images' scores. The argmax of every prediction is unchanged.
    Calibrating again replaces the earlier fit. Returns a
    [`Calibration`][catdog.training.calibration.Calibration] with the ECE, NLL and Brier score
    before and after, on the validation and test splits.

    Args:
        model: a trained catdog model (an ``ImageClassifier``).
        splits: the [`Splits`][catdog.data.pipelines.Splits] it was trained on.
        temperature: fit the temperature (else keep 1).
        unknown_coverage: the share of in-distribution images to accept, in (0, 1), or
            ``None``.
        method: ``"knn"``, ``"mahalanobis"`` or ``"msp"``.
        k: with ``"knn"``, which nearest training image's distance is the score.
        features: the [`Features`][catdog.training.feature_cache.Features] of a transfer
            model's base computed before (what cached-feature training computes), used
            instead of a pass over the training and validation images.

    Examples:
        ```python
        result = calibrate(model, splits)
        print(result)  # the temperature, ECE before and after, the threshold
        predict(model, ["whale.jpg"])[0].class_name
        # 'unknown'
        ```
    """
    _check(model, splits, unknown_coverage, method)
    start = time.perf_counter()
    wanted = ["validation", "test"]
    if unknown_coverage is not None and method != "msp":
        wanted.append("train")
    features = features or Features()
    passes = {
        s: head_pass(model, *features.plain(s))
        if s in features.embeddings
        else feature_pass(model, getattr(splits, s))
        for s in wanted
        if splits.files[s]
    }
    fitted = fit_temperature(*passes["validation"][1:]) if temperature else 1.0
    fitted = float(np.float32(fitted))  # as the model keeps it
    _warn_if_rough(len(passes["validation"][2]), fitted if temperature else None)
    layer, accepted = _fitted_layer(model, passes, fitted, unknown_coverage, method, k)
    attach_confidence(model, layer)
    result = Calibration(
        **(layer.describe() | {"temperature": fitted}),
        coverage_validation=accepted,
        metrics={},
        seconds=0.0,
    )
    _measure(result, passes, layer)
    result.seconds = time.perf_counter() - start
    logger.info("calibration (%.1f s): %s", result.seconds, str(result).replace("\n", "; "))
    return result


def _fitted_layer(model, passes: dict, temperature: float, coverage, method: str, k: int):
    """A built [`Confidence`][catdog.models.confidence.Confidence] layer with every weight
    fitted, and the share of validation images its threshold accepts (``None``: no score)."""
    features, probs, _ = passes["validation"]
    method = method if coverage is not None else None
    classes = int(model.output_shape[-1])
    bank = knn_bank(np.concatenate([passes["train"][0], features])) if method == "knn" else None
    if bank is not None and not 1 <= k <= len(bank):
        raise InvalidArgumentError(f"k must be in 1..{len(bank)} (training images), got {k!r}.")
    size = 0 if bank is None else len(bank)
    embedding = uses_embedding(model.layers)
    layer = Confidence(method, classes, size, k, coverage, embedding, name="confidence")
    layer.build((None, features.shape[1]))  # pooled: only the channels count
    layer.temperature.assign(temperature)
    if method == "mahalanobis":
        means, precision = gaussian_statistics(*passes["train"][::2], classes)
        layer.means.assign(means)
        layer.precision.assign(precision)
    elif method == "knn":
        layer.bank.assign(bank)
    if method is None:
        return layer, None
    calibrated = scaled(probs, temperature).astype(np.float32)
    scores = np.asarray(layer([features.astype(np.float32), calibrated], output="score"))
    if method == "knn":  # the validation images are in the bank: judge by out-of-fold scores
        scores = out_of_fold_knn_scores(bank, k)
        threshold = conformal_quantile(scores, coverage)
    else:
        threshold = float(np.quantile(scores, coverage, method="higher"))
    threshold += SCORE_NOISE + 1e-4 * abs(threshold)
    layer.threshold.assign(threshold)
    return layer, float(np.mean(scores <= np.float32(threshold)))


def _warn_if_rough(images: int, temperature: float | None) -> None:
    """Warn when the calibration rests on few validation images, or when the fitted
    temperature stopped at an end of its search range (``None``: no temperature fitted)."""
    if images < FEW_IMAGES:
        logger.warning(
            "Calibration rests on %d validation image(s): its temperature and unknown "
            "threshold are rough (%d or more give steadier ones). Add images, or pass a larger "
            "validation fraction.",
            images,
            FEW_IMAGES,
        )
    low, high = TEMPERATURE_RANGE
    if temperature is not None and not low * 1.01 < temperature < high / 1.01:
        logger.warning(
            "The fitted temperature %.3g is at an end of the range searched (%g to %g): the "
            "validation images do not pin it down (too few, or all predicted right with full "
            "confidence), and the probabilities are %s.",
            temperature,
            low,
            high,
            "pushed to near certainty" if temperature < 1 else "flattened towards equal odds",
        )


def _measure(result: Calibration, passes: dict, layer: Confidence) -> None:
    """Fill ``result``'s metrics, probabilities (before and after) and scores per evaluated
    split."""
    for split in ("validation", "test"):
        if split not in passes:
            continue
        features, probs, labels = passes[split]
        after = scaled(probs, result.temperature)
        result.probabilities[split] = (probs, after, labels)
        if layer.method is not None:
            inputs = [features.astype(np.float32), after.astype(np.float32)]
            result.scores[split] = np.asarray(layer(inputs, output="score"))
        result.metrics[split] = {
            "before": calibration_metrics(probs, labels),
            "after": calibration_metrics(after, labels),
        }
