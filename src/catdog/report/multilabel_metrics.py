"""Scores of a multi-label classifier, in NumPy only (no TensorFlow or Keras): each image shows
any number of classes (none included), ``targets`` are multi-hot ``(images, classes)`` arrays of
0/1 and ``probs`` the per-class sigmoid probabilities of the same shape.

A class is shown when its probability reaches its threshold (``probs >= thresholds``; a NaN
probability is never shown). Precision, recall and the exact-match ratio come with 95% Wilson
intervals; F1, average precision and the averages with the percentile interval of a seeded
bootstrap over images (every interval holds its estimate). A ratio with nothing to count
(precision with nothing shown, recall of a class without examples) is 0, as in scikit-learn."""

from __future__ import annotations

import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.report.intervals import (
    BOOTSTRAP_DRAWS,
    bootstrap_weights,
    percentile_interval,
    wilson_interval,
)

PR_CURVE_POINTS = 100
"""The most points of one class's precision-recall curve."""

MISTAKES = 10
"""The number of most confident mistakes kept per class and kind."""


def _first_bad(bad: np.ndarray, values: np.ndarray) -> str:
    row, column = (int(i) for i in np.argwhere(bad)[0])
    place = f"at image {row}, class {column}"
    return f"{float(values[row, column]):g} {place} ({int(bad.sum())} in all)"


def check_multi_hot(targets, probs, *, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``targets`` as a boolean and ``probs`` as a float64 ``(images, classes)`` array, after
    checking that both have that same shape and that ``targets`` holds only 0 and 1; with
    ``finite``, also that every probability is a number in [0, 1] (else NaN is allowed).

    Examples:
        >>> truth, probs = check_multi_hot([[1, 0], [0, 0]], [[0.9, 0.2], [0.1, 0.4]])
        >>> truth.tolist(), probs.dtype.name
        ([[True, False], [False, False]], 'float64')
    """
    try:
        targets, probs = np.asarray(targets, np.float64), np.asarray(probs, np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(f"targets and probs must hold numbers: {error}") from None
    if targets.ndim != 2 or targets.shape != probs.shape or not targets.size:
        raise InvalidArgumentError(
            "targets and probs must be (images, classes) arrays of the same shape, with at "
            f"least one image and one class; got {targets.shape} and {probs.shape}."
        )
    bad = ~np.isin(targets, (0.0, 1.0))
    if bad.any():
        raise InvalidArgumentError(
            "targets must be multi-hot: 1 where the image shows the class and 0 where it "
            f"does not; found {_first_bad(bad, targets)}."
        )
    if finite and (bad := ~(np.isfinite(probs) & (probs >= 0) & (probs <= 1))).any():
        raise InvalidArgumentError(
            "probs must be probabilities in [0, 1], one sigmoid per class; found "
            f"{_first_bad(bad, probs)}: pass sigmoid outputs (not logits) and leave "
            "out the images whose prediction failed."
        )
    return targets.astype(bool), probs


def _checked_thresholds(thresholds, classes: int) -> np.ndarray:
    try:
        found = np.asarray(thresholds, np.float64)
    except (TypeError, ValueError):
        found = np.full(0, np.nan)
    if found.ndim == 0:
        found = np.full(classes, float(found))
    if found.shape != (classes,) or not np.isfinite(found).all():
        raise InvalidArgumentError(
            f"thresholds must be one number, or one number per class ({classes}), got "
            f"{str(thresholds)[:80]}."
        )
    return found


def _ranked(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order of one class's scores, highest first (NaN last), and the positions in that
    order where each run of equal scores ends: one threshold per distinct score."""
    scores = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    return order, np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]


def _weighted_ap(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of one class for each row of ``weights`` (how many times each image
    counts): sum over thresholds of (R_n - R_(n-1)) P_n; NaN where no positive counts. Only
    the thresholds whose run of equal scores holds a positive add to the sum."""
    order, ends = _ranked(scores)
    positive = np.flatnonzero(truth[order])
    if not len(positive):
        return np.full(len(weights), np.nan)
    counted = weights[:, order]
    before = np.searchsorted(positive, ends, side="right")  # positives up to each end
    hit = np.flatnonzero(np.diff(before, prepend=0))
    seen = np.cumsum(counted, axis=1)[:, ends[hit]].astype(np.float64)
    tp = np.cumsum(counted[:, positive], axis=1)[:, before[hit] - 1].astype(np.float64)
    step = np.diff(tp, axis=1, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (step * np.where(seen > 0, tp / seen, 0.0)).sum(axis=1) / tp[:, -1]


def average_precision(targets, scores) -> np.ndarray:
    """Each class's average precision, as scikit-learn's ``average_precision_score``: the sum
    over the distinct scores, highest first, of (R_n - R_(n-1)) P_n, with P_n and R_n the
    precision and recall of showing the class at scores >= the n-th. NaN for a class without
    positives; a NaN score ranks last.

    Examples:
        >>> average_precision([[1, 0], [0, 0], [1, 0]], [[0.9, 0.8], [0.7, 0.3], [0.4, 0.6]])
        array([0.83333333,        nan])
    """
    truth, scores = check_multi_hot(targets, scores)
    return _class_aps(truth, scores, np.ones((1, len(truth)), int))[0]


def _thinned(count: int, points: int) -> np.ndarray:
    """At most ``points`` evenly spread indices of ``count`` items, the first and last kept."""
    return np.unique(np.linspace(0, count - 1, min(points, count)).round()).astype(int)


def pr_curve(targets, scores, points: int = PR_CURVE_POINTS) -> list[dict]:
    """Each class's precision-recall curve: ``{"thresholds", "precision", "recall"}`` lists at
    its distinct scores, highest threshold first, thinned evenly to at most ``points`` points
    (the first and last kept); empty lists for a class without positives. A NaN score is
    never shown: it has no point of its own (so recall may end below 1).

    Examples:
        >>> curve = pr_curve([[1], [0], [1]], [[0.9], [0.5], [0.2]])[0]
        >>> curve["thresholds"], curve["precision"], curve["recall"]
        ([0.9, 0.5, 0.2], [1.0, 0.5, 0.6666666666666666], [0.5, 0.5, 1.0])
    """
    truth, scores = check_multi_hot(targets, scores)
    if int(points) < 2:
        raise InvalidArgumentError(f"pr_curve needs points >= 2, got {points!r}.")
    curves = []
    for k in range(truth.shape[1]):
        order, ends = _ranked(scores[:, k])
        tp, found = np.cumsum(truth[order, k]), np.zeros(0, int)
        ends = ends[~np.isnan(scores[order[ends], k])]  # a NaN score is never shown
        if tp[-1] and len(ends):
            found = ends[_thinned(len(ends), int(points))]
        curves.append({
            "thresholds": scores[order[found], k].tolist(),
            "precision": (tp[found] / (found + 1)).tolist(),
            "recall": (tp[found] / max(int(tp[-1]), 1)).tolist(),
        })  # fmt: skip
    return curves


def _class_aps(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Every class's average precision, one row per row of ``weights``."""
    classes = range(truth.shape[1])
    return np.stack([_weighted_ap(truth[:, k], scores[:, k], weights) for k in classes], axis=1)


def _ratio(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-300), 0.0)


def _rates(tp, fp, fn) -> tuple:
    """Precision, recall and F1 of counts (0 where nothing is counted)."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def _statistics(truth, shown, probs, weights: np.ndarray) -> dict:
    """Every score, one row per row of ``weights`` (how many times each image counts)."""
    counts = weights.astype(np.float64)
    tp = counts @ (truth & shown)
    fp, fn = counts @ (~truth & shown), counts @ (truth & ~shown)
    precision, recall, f1 = _rates(tp, fp, fn)
    micro = _rates(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
    ap = _class_aps(truth, probs, weights)
    defined = ~np.isnan(ap)
    mean_ap = _ratio(np.where(defined, ap, 0.0).sum(axis=1), defined.sum(axis=1))
    mean_ap[~defined.any(axis=1)] = np.nan
    images = counts.sum(axis=1)
    return {
        "precision": precision, "recall": recall, "f1": f1, "ap": ap,
        "micro_precision": micro[0], "micro_recall": micro[1], "micro_f1": micro[2],
        "macro_precision": precision.mean(axis=1), "macro_recall": recall.mean(axis=1),
        "macro_f1": f1.mean(axis=1), "map": mean_ap,
        "exact_match": counts @ (truth == shown).all(axis=1) / images,
        "hamming_loss": counts @ (truth != shown).mean(axis=1) / images,
        "tp": tp, "fp": fp, "fn": fn,
    }  # fmt: skip


def _bootstrap(truth, shown, probs, draws: int, seed: int) -> dict:
    """The scores of ``draws`` resamples of the images (in chunks, to bound the memory)."""
    weights = bootstrap_weights(len(truth), draws, seed).astype(np.int32)  # counts <= images
    chunk = max(1, 2_000_000 // len(truth))
    starts = range(0, draws, chunk)
    parts = [_statistics(truth, shown, probs, weights[i : i + chunk]) for i in starts]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _number(value) -> float | None:
    return None if np.isnan(value) else float(value)


def _interval(found: tuple | None) -> list | None:
    return None if found is None else [float(found[0]), float(found[1])]


def _wilson(successes, total) -> list | None:
    return _interval(wilson_interval(int(successes), int(total))) if total else None


def _per_class(point: dict, draws: dict, k: int) -> dict:
    tp, fp, fn = (int(point[name][0, k]) for name in ("tp", "fp", "fn"))
    ap, ap_draws = _number(point["ap"][0, k]), draws["ap"][:, k]
    return {
        "precision": float(point["precision"][0, k]), "precision_interval": _wilson(tp, tp + fp),
        "recall": float(point["recall"][0, k]), "recall_interval": _wilson(tp, tp + fn),
        "f1": float(point["f1"][0, k]),
        "f1_interval": _interval(percentile_interval(point["f1"][0, k], draws["f1"][:, k])),
        "ap": ap,
        "ap_interval": None if ap is None else _interval(percentile_interval(ap, ap_draws)),
        "support": tp + fn, "tp": tp, "fp": fp, "fn": fn,
    }  # fmt: skip


def _average(point: dict, draws: dict, name: str) -> tuple[float | None, list | None]:
    value = _number(point[name][0])
    return value, None if value is None else _interval(percentile_interval(value, draws[name]))


def multilabel_scores(
    targets, probs, thresholds, *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> dict:
    """A multi-label classifier's scores, JSON-ready: ``per_class`` (precision, recall, F1 and
    ``ap`` each with its ``_interval``, ``support``, ``tp``, ``fp``, ``fn``), ``micro`` and
    ``macro`` precision, recall and F1, ``map`` (mean AP over the classes with examples),
    ``exact_match`` (images whose shown classes are exactly their true ones) and
    ``hamming_loss`` (wrong decisions per image and class), each with its interval. Bootstrap
    intervals use ``draws`` resamples of the images drawn with ``seed``; an undefined number
    (AP of a class without examples) and its interval are ``None``.

    Examples:
        >>> scores = multilabel_scores([[1, 0], [1, 1], [0, 0]], [[0.9, 0.2], [0.6, 0.4],
        ...                            [0.1, 0.7]], 0.5, draws=50)
        >>> scores["micro"]["f1"], scores["exact_match"], round(scores["hamming_loss"], 3)
        (0.6666666666666666, 0.3333333333333333, 0.333)
    """
    truth, probs = check_multi_hot(targets, probs)
    limits = _checked_thresholds(thresholds, truth.shape[1])
    if int(draws) < 1:
        raise InvalidArgumentError(f"multilabel_scores needs draws >= 1, got {draws!r}.")
    shown = probs >= limits
    point = _statistics(truth, shown, probs, np.ones((1, len(truth)), int))
    resampled = _bootstrap(truth, shown, probs, int(draws), seed)
    found = {"count": len(truth), "classes": truth.shape[1], "thresholds": limits.tolist()}
    found["per_class"] = [_per_class(point, resampled, k) for k in range(truth.shape[1])]
    for average in ("micro", "macro"):
        found[average] = {}
        for rate in ("precision", "recall", "f1"):
            value, interval = _average(point, resampled, f"{average}_{rate}")
            found[average].update({rate: value, f"{rate}_interval": interval})
    found["map"], found["map_interval"] = _average(point, resampled, "map")
    exact = int((truth == shown).all(axis=1).sum())
    found["exact_match"] = exact / len(truth)
    found["exact_match_interval"] = _wilson(exact, len(truth))
    found["hamming_loss"], found["hamming_loss_interval"] = _average(
        point, resampled, "hamming_loss"
    )
    found.update(draws=int(draws), seed=seed)
    return found


def most_confident_mistakes(targets, probs, thresholds, k: int = MISTAKES) -> list[dict]:
    """Each class's ``k`` most confident mistakes, as image indices: ``false_positives`` (the
    class shown but absent, highest probability first) and ``false_negatives`` (present but
    not shown, lowest probability first; a NaN probability last).

    Examples:
        >>> most_confident_mistakes([[0], [0], [1], [1]], [[0.7], [0.9], [0.1], [0.4]], 0.5)
        [{'false_positives': [1, 0], 'false_negatives': [2, 3]}]
    """
    truth, probs = check_multi_hot(targets, probs)
    shown = probs >= _checked_thresholds(thresholds, truth.shape[1])
    found = []
    for c in range(truth.shape[1]):
        wrong_shown = np.flatnonzero(shown[:, c] & ~truth[:, c])
        missed = np.flatnonzero(~shown[:, c] & truth[:, c])
        wrong_shown = wrong_shown[np.argsort(-probs[wrong_shown, c], kind="mergesort")]
        missed = missed[np.argsort(probs[missed, c], kind="mergesort")]
        found.append({
            "false_positives": wrong_shown[: int(k)].tolist(),
            "false_negatives": missed[: int(k)].tolist(),
        })  # fmt: skip
    return found
