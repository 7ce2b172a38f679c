"""Multi-label scores in NumPy: average precision as scikit-learn computes it, the averages of
a table checked by hand, intervals that hold their estimates, the most confident mistakes."""

import json

import numpy as np
import pytest

from catdog.errors import InvalidArgumentError
from catdog.report.intervals import bootstrap_weights, percentile_interval, wilson_interval
from catdog.report.multilabel_metrics import (
    average_precision,
    most_confident_mistakes,
    multilabel_scores,
    pr_curve,
)

# 6 images x 2 classes; at 0.5: class 0 has tp 2 (images 0, 1), fp 1 (2), fn 1 (4); class 1
# tp 2 (2, 5), fp 0, fn 1 (1: 0.45 is just under); images 0, 3 and 5 are exactly right
TARGETS = [[1, 0], [1, 1], [0, 1], [0, 0], [1, 0], [0, 1]]
PROBS = [[0.9, 0.2], [0.8, 0.45], [0.6, 0.7], [0.1, 0.4], [0.4, 0.1], [0.2, 0.95]]


def _random_table(seed: int, n: int = 40, classes: int = 4):
    """Multi-hot targets and scores rounded to one decimal (many ties); class 3 has no
    positives."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, classes)) < 0.35).astype(np.float32)
    targets[:, 3] = 0
    scores = np.round(np.clip(targets * 0.3 + rng.random((n, classes)) * 0.7, 0, 1), 1)
    return targets, scores


def _intervals(found, estimate=None):
    """Every ``(estimate, interval)`` pair in a scores dict."""
    if isinstance(found, list):
        return [pair for item in found for pair in _intervals(item)]
    if not isinstance(found, dict):
        return []
    pairs = [
        (found[name.removesuffix("_interval")], value)
        for name, value in found.items()
        if name.endswith("_interval")
    ]
    return pairs + [pair for value in found.values() for pair in _intervals(value)]


def test_average_precision_equals_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    for seed in range(5):
        targets, scores = _random_table(seed)
        ours = average_precision(targets, scores)
        theirs = [metrics.average_precision_score(targets[:, k], scores[:, k]) for k in range(3)]
        np.testing.assert_allclose(ours[:3], theirs, rtol=1e-12)
        assert np.isnan(ours[3])  # no positives: undefined, not 0


def test_the_bootstrap_ap_interval_is_that_of_scikit_learns_ap_on_each_resample():
    """The bootstrap counts each image as often as it was drawn instead of copying it: its
    interval is the percentile interval of scikit-learn's AP on the copied images."""
    metrics = pytest.importorskip("sklearn.metrics")
    targets, scores = _random_table(4, n=30)
    weights = bootstrap_weights(30, draws=40, seed=0)
    found = multilabel_scores(targets, scores, 0.5, draws=40, seed=0)["per_class"][0]
    resampled = []
    for draw in range(40):
        picked = np.repeat(np.arange(30), weights[draw])
        resampled.append(metrics.average_precision_score(targets[picked, 0], scores[picked, 0]))
    assert found["ap_interval"] == pytest.approx(list(percentile_interval(found["ap"], resampled)))


def test_pr_curve_is_scikit_learns_curve_thinned_to_the_points_asked():
    metrics = pytest.importorskip("sklearn.metrics")
    targets, scores = _random_table(0, n=300)
    scores = np.round(scores + np.linspace(0, 0.001, 300)[:, None], 4)  # many distinct scores
    curves = pr_curve(targets, scores, points=30)
    precision, recall, thresholds = metrics.precision_recall_curve(targets[:, 0], scores[:, 0])
    full = pr_curve(targets, scores, points=10_000)[0]
    np.testing.assert_allclose(full["thresholds"], thresholds[::-1])
    np.testing.assert_allclose(full["precision"], precision[:-1][::-1])
    np.testing.assert_allclose(full["recall"], recall[:-1][::-1])
    assert all(len(c["thresholds"]) <= 30 for c in curves) and len(curves[0]["thresholds"]) == 30
    assert curves[0]["thresholds"][0] == full["thresholds"][0] and curves[0]["recall"][-1] == 1.0
    assert curves[3] == {"thresholds": [], "precision": [], "recall": []}
    with_nan = pr_curve([[1], [1], [0]], [[0.8], [float("nan")], [0.3]])[0]
    assert with_nan == {"thresholds": [0.8, 0.3], "precision": [1.0, 0.5], "recall": [0.5, 0.5]}


def test_the_hand_made_table_gives_the_numbers_worked_out_by_hand():
    found = multilabel_scores(TARGETS, PROBS, [0.5, 0.5], draws=200)
    first, second = found["per_class"]
    assert (first["tp"], first["fp"], first["fn"], first["support"]) == (2, 1, 1, 3)
    assert (second["tp"], second["fp"], second["fn"], second["support"]) == (2, 0, 1, 3)
    assert first["precision"] == pytest.approx(2 / 3) and first["recall"] == pytest.approx(2 / 3)
    assert second["precision"] == 1.0 and second["f1"] == pytest.approx(0.8)
    assert first["ap"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 3 / 4) and second["ap"] == 1.0
    micro, macro = found["micro"], found["macro"]
    assert (micro["precision"], micro["recall"]) == pytest.approx((4 / 5, 4 / 6))
    assert micro["f1"] == pytest.approx(8 / 11)
    assert (macro["precision"], macro["recall"]) == pytest.approx((5 / 6, 2 / 3))
    assert macro["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert found["map"] == pytest.approx((11 / 12 + 1) / 2)
    assert found["exact_match"] == 0.5 and found["hamming_loss"] == 0.25
    assert found["exact_match_interval"] == pytest.approx(list(wilson_interval(3, 6)))
    assert found["count"] == 6 and found["thresholds"] == [0.5, 0.5]
    assert json.loads(json.dumps(found)) == found  # JSON-ready: no NaN, no NumPy types


def test_the_counts_and_averages_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    targets, scores = _random_table(3, n=60)
    shown = scores >= 0.6
    found = multilabel_scores(targets, scores, 0.6, draws=20)
    for average in ("micro", "macro"):
        expected = metrics.precision_recall_fscore_support(
            targets, shown, average=average, zero_division=0
        )[:3]
        assert [found[average][r] for r in ("precision", "recall", "f1")] == pytest.approx(expected)
    assert found["hamming_loss"] == pytest.approx(metrics.hamming_loss(targets, shown))
    assert found["exact_match"] == pytest.approx(metrics.accuracy_score(targets, shown))


def test_every_interval_holds_its_estimate_and_the_bootstrap_is_seeded():
    targets, scores = _random_table(1, n=50)
    found = multilabel_scores(targets, scores, [0.5, 0.6, 0.4, 0.5], draws=300, seed=0)
    pairs = _intervals(found) + _intervals(multilabel_scores(TARGETS, PROBS, 0.5, draws=100))
    assert len(pairs) > 30
    for estimate, interval in pairs:
        if estimate is None:
            assert interval is None
        elif interval is not None:
            assert interval[0] <= estimate <= interval[1], (estimate, interval)
    assert found["per_class"][3]["ap"] is None and found["per_class"][3]["ap_interval"] is None
    assert multilabel_scores(targets, scores, 0.5, draws=50) == multilabel_scores(
        targets, scores, 0.5, draws=50
    )


def test_a_nan_probability_is_never_shown():
    found = multilabel_scores([[1], [0]], [[float("nan")], [0.9]], 0.5, draws=10)
    assert (found["per_class"][0]["tp"], found["per_class"][0]["fp"]) == (0, 1)
    assert most_confident_mistakes([[1], [1]], [[float("nan")], [0.2]], 0.5)[0] == {
        "false_positives": [],
        "false_negatives": [1, 0],
    }


def test_mistakes_come_most_confident_first():
    targets = [[0], [0], [1], [0], [1], [1], [0]]
    probs = [[0.7], [0.99], [0.3], [0.2], [0.05], [0.9], [0.8]]
    (found,) = most_confident_mistakes(targets, probs, 0.5)
    assert found == {"false_positives": [1, 6, 0], "false_negatives": [4, 2]}
    assert most_confident_mistakes(targets, probs, 0.5, k=1)[0]["false_positives"] == [1]
    assert most_confident_mistakes(TARGETS, PROBS, [0.5, 0.5]) == [
        {"false_positives": [2], "false_negatives": [4]},
        {"false_positives": [], "false_negatives": [1]},
    ]


def test_the_interval_helpers():
    weights = bootstrap_weights(7, draws=40, seed=3)
    assert (weights.sum(axis=1) == 7).all() and (weights == bootstrap_weights(7, 40, 3)).all()
    assert percentile_interval(0.9, [0.1, 0.2, 0.3]) == pytest.approx((0.105, 0.9))
    assert percentile_interval(0.5, [float("nan")]) is None


@pytest.mark.parametrize(
    ("targets", "probs", "thresholds", "says"),
    [
        ([[1, 0]], [[0.5, 0.5, 0.5]], 0.5, "same shape"),
        ([1, 0], [0.5, 0.5], 0.5, "same shape"),
        ([[1, 2]], [[0.5, 0.5]], 0.5, "multi-hot"),
        ([[1, 0]], [[0.5, 0.5]], [0.5, 0.5, 0.5], "one number per class"),
        ([[1, 0]], [["a", 0.5]], 0.5, "hold numbers"),
    ],
)
def test_bad_inputs_raise_one_line_errors(targets, probs, thresholds, says):
    for call in (
        lambda: multilabel_scores(targets, probs, thresholds, draws=5),
        lambda: most_confident_mistakes(targets, probs, thresholds),
    ):
        with pytest.raises(InvalidArgumentError, match=says) as caught:
            call()
        assert "\n" not in str(caught.value)
