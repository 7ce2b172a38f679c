"""The k-nearest-neighbour score of the unknown answer and its threshold: how far an image's
embedding is from its ``k``-th nearest known image, and the threshold that accepts a stated
share of images like the known ones, set from out-of-fold scores (chosen on real photos:
benchmarks/bench_unknown.py, the calibration guide)."""

from __future__ import annotations

import numpy as np

from catdog.errors import InvalidArgumentError

KNN_BANK_SIZE = 4096
"""The most training embeddings a ``"knn"`` score keeps (drawn at random, seeded): 21 MB in
float32 for a 1,280-wide MobileNetV2 embedding."""
OUT_OF_FOLD = 10
"""The folds of the out-of-fold scores that set a ``"knn"`` threshold (see
[`knn_threshold`][catdog.training.neighbours.knn_threshold])."""


def knn_bank(features, size: int = KNN_BANK_SIZE, seed: int = 0) -> np.ndarray:
    """Up to ``size`` of ``features`` (drawn at random), each scaled to unit length."""
    features = np.asarray(features, np.float32)
    if len(features) > size:
        features = features[np.random.default_rng(seed).choice(len(features), size, False)]
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_scores(queries, bank, k: int) -> np.ndarray:
    """One minus the cosine similarity of each unit row of ``queries`` to its ``k``-th
    nearest row of ``bank``: the ``"knn"`` score, as the model computes it."""
    similarities = np.asarray(queries, np.float32) @ np.asarray(bank, np.float32).T
    return 1.0 - -np.partition(-similarities, k - 1, axis=1)[:, k - 1]


def conformal_quantile(scores, coverage: float) -> float:
    """The ``ceil((n + 1) * coverage)``-th smallest of ``n`` scores (the largest where that
    rank passes ``n``): a new score from the same source is within it with probability at
    least ``coverage``.

    Examples:
        >>> conformal_quantile([0.1, 0.2, 0.3, 0.4], 0.5)
        0.3
    """
    ordered = np.sort(np.asarray(scores, np.float64))
    rank = int(np.ceil((len(ordered) + 1) * coverage - 1e-9))  # not one more by float error
    return float(ordered[min(rank, len(ordered)) - 1])


def out_of_fold_knn_scores(bank, k: int, folds: int = OUT_OF_FOLD, seed: int = 0) -> np.ndarray:
    """Each bank image's ``"knn"`` score against the bank without its fold (``folds`` folds,
    dealt at random with ``seed``), in fold order."""
    bank = np.asarray(bank, np.float32)
    fold = np.random.default_rng(seed).permutation(len(bank)) % min(folds, len(bank))
    if len(bank) - np.bincount(fold).max() < k:
        raise InvalidArgumentError(
            f"The unknown answer compares an image with its {k}th nearest training image, and "
            f"{len(bank)} training images are too few to set its threshold: add images, or "
            "pass unknown_coverage=None (--unknown-coverage off) for no unknown answer."
        )
    return np.concatenate(
        [knn_scores(bank[fold == f], bank[fold != f], k) for f in np.unique(fold)]
    )


def knn_threshold(bank, k: int, coverage: float, folds: int = OUT_OF_FOLD, seed: int = 0):
    """The ``"knn"`` threshold: the conformal quantile (see
    [`conformal_quantile`][catdog.training.neighbours.conformal_quantile]) of out-of-fold
    scores, each bank image scored against the bank without its fold. It keeps its promise
    on photos never seen whatever the size of the validation split (measured on real photos:
    within a point of the asked rate from about 200 training images on), where a quantile of
    validation scores overshoots on small splits.

    Examples:
        ```python
        threshold = knn_threshold(bank, k=5, coverage=0.98)
        ```
    """
    return conformal_quantile(out_of_fold_knn_scores(bank, k, folds, seed), coverage)
