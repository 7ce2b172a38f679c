"""Per-class decision thresholds of a multi-label model, chosen on validation data."""

import logging

import numpy as np
import pytest

from catdog.errors import InvalidArgumentError
from catdog.training.class_thresholds import (
    DEFAULT_GOAL,
    candidate_thresholds,
    fit_class_thresholds,
    parse_threshold_goal,
)


def _rates(truth, probs, threshold):
    """Precision, recall and F1 of one class shown at ``probs >= threshold``."""
    shown = probs >= threshold
    tp, fp, fn = (truth & shown).sum(), (~truth & shown).sum(), (truth & ~shown).sum()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    return precision, recall, (2 * tp / (2 * tp + fp + fn))


def _validation(seed: int, n: int = 200, classes: int = 3):
    rng = np.random.default_rng(seed)
    truth = rng.random((n, classes)) < 0.3
    probs = np.clip(truth * 0.35 + rng.random((n, classes)) * 0.65, 0, 1)
    return truth, probs


def test_the_f1_goal_picks_the_midpoint_of_the_best_gap():
    # shown from 0.4 up: tp 3, fp 1 (0.6), F1 6/7, better than from 0.7 (F1 0.8) or 0.3 (0.75)
    truth = np.array([[0], [0], [1], [0], [1], [1]])
    probs = np.array([[0.1], [0.3], [0.4], [0.6], [0.7], [0.9]])
    (threshold,) = fit_class_thresholds(truth, probs)
    assert threshold == pytest.approx(0.35) and DEFAULT_GOAL == "f1"
    assert _rates(truth[:, 0] == 1, probs[:, 0], threshold)[2] == pytest.approx(6 / 7)


def test_the_f1_threshold_beats_every_other_threshold():
    truth, probs = _validation(0)
    thresholds = fit_class_thresholds(truth, probs, "f1")
    for k, threshold in enumerate(thresholds):
        best = _rates(truth[:, k], probs[:, k], threshold)[2]
        grid = [_rates(truth[:, k], probs[:, k], t)[2] for t in np.linspace(0, 1, 401)]
        assert best >= max(grid) - 1e-12
        assert not np.isclose(probs[:, k], threshold, rtol=0, atol=1e-9).any()  # a midpoint


def test_the_precision_goal_is_met_at_the_lowest_such_threshold():
    truth, probs = _validation(1)
    thresholds = fit_class_thresholds(truth, probs, "precision=0.9")
    for k, threshold in enumerate(thresholds):
        assert _rates(truth[:, k], probs[:, k], threshold)[0] >= 0.9
        lower = candidate_thresholds(probs[:, k])
        lower = lower[lower < threshold]
        assert all(_rates(truth[:, k], probs[:, k], t)[0] < 0.9 for t in lower)


def test_the_recall_goal_is_met_at_the_highest_such_threshold():
    truth, probs = _validation(2)
    thresholds = fit_class_thresholds(truth, probs, "recall=0.9")
    for k, threshold in enumerate(thresholds):
        assert _rates(truth[:, k], probs[:, k], threshold)[1] >= 0.9
        higher = candidate_thresholds(probs[:, k])
        higher = higher[higher > threshold]
        assert all(_rates(truth[:, k], probs[:, k], t)[1] < 0.9 for t in higher)
    # below the lowest probability: the midpoint with 0
    assert fit_class_thresholds([[1], [0]], [[0.2], [0.6]], "recall=1")[0] == pytest.approx(0.1)


def test_degenerate_classes_keep_one_half_with_a_warning(caplog):
    truth = [[0, 1, 1], [0, 1, 0], [0, 1, 1], [0, 1, 0]]
    probs = [[0.9, 0.2, 0.8], [0.1, 0.3, 0.3], [0.2, 0.9, 0.7], [0.3, 0.1, 0.1]]
    with caplog.at_level(logging.WARNING, logger="catdog"):
        found = fit_class_thresholds(truth, probs, class_names=["cat", "dog", "bird"])
    assert found[:2].tolist() == [0.5, 0.5] and found[2] == pytest.approx(0.5)
    messages = [r.getMessage() for r in caplog.records if r.name == "catdog"]
    assert len(messages) == 2
    assert "'cat'" in messages[0] and "no positives" in messages[0]
    assert "'dog'" in messages[1] and "no negatives" in messages[1]


def test_an_unreachable_goal_keeps_one_half_with_a_warning(caplog):
    truth, probs = [[0], [1], [0], [1]], [[0.9], [0.8], [0.7], [0.2]]  # the top one is wrong
    with caplog.at_level(logging.WARNING, logger="catdog"):
        assert fit_class_thresholds(truth, probs, "precision=1").tolist() == [0.5]
    assert "reaches precision=1" in caplog.records[-1].getMessage()


def test_goals_parse_in_every_valid_form():
    assert parse_threshold_goal("f1") == ("f1", None)
    assert parse_threshold_goal("Precision = 0.95") == ("precision", 0.95)
    assert parse_threshold_goal("recall=1") == ("recall", 1.0)


@pytest.mark.parametrize(
    ("targets", "probs", "goal", "says"),
    [
        ([[1, 0]], [[0.5, 0.5, 0.5]], "f1", "same shape"),
        ([[1, 0.5]], [[0.5, 0.5]], "f1", "multi-hot"),
        ([[1, 0]], [[0.5, float("nan")]], "f1", "nan at image 0, class 1"),
        ([[1, 0]], [[3.2, -1.0]], "f1", "not logits"),
        ([[1, 0]], [[0.5, 0.5]], "f2", '"f1", "precision=X", "recall=X"'),
        ([[1, 0]], [[0.5, 0.5]], "precision=1.5", "in \\(0, 1\\]"),
        ([[1, 0]], [[0.5, 0.5]], "recall=high", '"recall=X"'),
    ],
)
def test_bad_inputs_raise_one_line_errors(targets, probs, goal, says):
    with pytest.raises(InvalidArgumentError, match=says) as caught:
        fit_class_thresholds(targets, probs, goal)
    assert "\n" not in str(caught.value)


def test_class_names_must_match_the_classes():
    with pytest.raises(InvalidArgumentError, match="names 1 classes, the data has 2"):
        fit_class_thresholds([[1, 0], [0, 1]], [[0.9, 0.1], [0.2, 0.8]], class_names=["cat"])
