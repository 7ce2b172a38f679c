"""How honest a model's probabilities are, and what its ``unknown`` answer costs: expected
calibration error, negative log-likelihood and Brier score, the reliability diagram, the
risk-coverage curve, and their figures."""

from __future__ import annotations

import os

import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.report._figures import figure, finish, plain

ECE_BINS = 15
"""The number of equal-width confidence bins of the expected calibration error."""


def _checked(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).astype(int).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise InvalidArgumentError(
            f"probs must be (n, classes) with one label each (n >= 1), got {probs.shape} "
            f"probabilities and {labels.shape} labels."
        )
    return probs, labels


def reliability_bins(probs, labels, bins: int = ECE_BINS) -> dict:
    """Per equal-width bin of the top probability: mean ``confidence``, ``accuracy``, ``count``.

    Empty bins hold ``nan`` confidence and accuracy and a count of 0.

    Examples:
        >>> bins = reliability_bins([[0.9, 0.1], [0.8, 0.2]], [0, 1], bins=5)
        >>> bins["count"].tolist(), float(bins["accuracy"][-1])
        ([0, 0, 0, 0, 2], 0.5)
    """
    probs, labels = _checked(probs, labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct, minlength=bins) / count
    return {"confidence": mean_confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """The expected calibration error: the count-weighted mean gap between each bin's accuracy
    and its mean top probability (``bins`` equal-width bins, 15 by default).

    Examples:
        >>> round(expected_calibration_error([[0.9, 0.1], [0.8, 0.2]], [0, 1]), 2)
        0.45
    """
    found = reliability_bins(probs, labels, bins)
    used = found["count"] > 0
    gaps = np.abs(found["accuracy"][used] - found["confidence"][used])
    return float(np.sum(gaps * found["count"][used]) / found["count"].sum())


def negative_log_likelihood(probs, labels) -> float:
    """The mean negative log probability of the true class (clipped at 1e-7, as Keras does).

    Examples:
        >>> round(negative_log_likelihood([[0.5, 0.5]], [1]), 4)
        0.6931
    """
    probs, labels = _checked(probs, labels)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1))))


def brier_score(probs, labels) -> float:
    """The mean squared distance between the probabilities and the one-hot true class.

    Examples:
        >>> brier_score([[1.0, 0.0], [0.5, 0.5]], [0, 0])
        0.25
    """
    probs, labels = _checked(probs, labels)
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))


def calibration_metrics(probs, labels, bins: int = ECE_BINS) -> dict:
    """``{"ece", "nll", "brier", "accuracy", "count"}`` of probabilities against labels.

    Examples:
        >>> calibration_metrics([[0.9, 0.1], [0.2, 0.8]], [0, 1])["accuracy"]
        1.0
    """
    probs, labels = _checked(probs, labels)
    return {
        "ece": expected_calibration_error(probs, labels, bins),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "count": int(len(labels)),
    }


def risk_coverage(correct, scores, points: int = 20) -> list[list[float]]:
    """The risk-coverage curve: ``[coverage, error rate among the accepted]`` pairs.

    Images are accepted from the lowest ``score`` (most sure) up; ``points`` coverages evenly
    spaced in ``(0, 1]`` (fewer for fewer images). Ties in score are accepted together.

    Examples:
        >>> risk_coverage([True, True, False, True], [0.1, 0.2, 0.9, 0.3], points=2)
        [[0.5, 0.0], [1.0, 0.25]]
    """
    correct = np.asarray(correct, bool).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(correct) != len(scores) or not len(scores):
        raise InvalidArgumentError("risk_coverage needs one score per image (at least one).")
    order = np.argsort(scores, kind="stable")
    errors = np.cumsum(~correct[order])
    n = len(scores)
    result = []
    for count in sorted({max(1, round(n * (i + 1) / points)) for i in range(points)}):
        while count < n and scores[order[count]] == scores[order[count - 1]]:
            count += 1  # a threshold accepts every image of a score, or none
        pair = [count / n, float(errors[count - 1] / count)]
        if not result or result[-1] != pair:
            result.append(pair)
    return result


def plot_reliability(
    probs_before,
    probs_after,
    labels,
    *,
    bins: int = ECE_BINS,
    path: str | os.PathLike | None = None,
):
    """The reliability diagram: accuracy against confidence per bin, before and after
    calibration, with each one's ECE (the diagonal is a perfectly calibrated model).

    Examples:
        ```python
        plot_reliability(raw, calibrated, labels, path="reliability.png")
        ```
    """
    fig = figure(5.2, 4.6)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for probs, name, marker in ((probs_before, "before", "o"), (probs_after, "after", "s")):
        found = reliability_bins(probs, labels, bins)
        used = found["count"] > 0
        ece = expected_calibration_error(probs, labels, bins)
        ax.plot(found["confidence"][used], found["accuracy"][used], marker=marker,
                label=f"{name} calibration (ECE {ece:.3f})")  # fmt: skip
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1.02),
           ylim=(0, 1.02), title=f"reliability ({len(np.asarray(labels))} images)")  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    return finish(fig, path)


def plot_risk_coverage(curves: dict, *, path: str | os.PathLike | None = None):
    """Risk (error rate among the accepted images) against coverage, one line per curve.

    ``curves`` maps a label to [`risk_coverage`][catdog.report.reliability.risk_coverage]'s
    pairs.

    Examples:
        ```python
        plot_risk_coverage({"mahalanobis": report.risk_coverage}, path="risk_coverage.png")
        ```
    """
    fig = figure(5.2, 4.0)
    ax = fig.subplots()
    for label, pairs in curves.items():
        pairs = np.asarray(pairs, np.float64).reshape(-1, 2)
        ax.plot(pairs[:, 0], pairs[:, 1], marker=".", label=plain(label))
    ax.set(xlabel="coverage (share of images answered)", ylabel="risk (error rate answered)",
           xlim=(0, 1.02), title="risk-coverage")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return finish(fig, path)
