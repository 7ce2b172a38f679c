"""Multi-label models (``multi_label=True``): a sigmoid head, binary cross-entropy, saved with
the flag; the parts of the workflow that do not support them yet refuse them by name."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from catdog.errors import InvalidArgumentError
from catdog.models.classifier import compile_model, is_multi_label, probabilities
from catdog.models.registry import build_model
from catdog.models.saving import load_model

NAMES = ["cats", "dogs", "foxes"]


def _colour_photos(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16x16 photos whose red, green and blue halves say which of three classes they show."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((count, 3)) < 0.5).astype("float32")
    images = rng.uniform(0, 60, (count, 16, 16, 3)).astype("float32")
    images += targets[:, None, None, :] * 180  # a class shown: its channel bright
    return images, targets


@pytest.mark.parametrize("name", ["baseline", "augmented", "preprocessed", "transfer"])
def test_every_factory_builds_a_sigmoid_head_under_binary_cross_entropy(name):
    extra = {"weights": None} if name == "transfer" else {}
    model = build_model(name, input_shape=(32, 32, 3), class_names=NAMES, multi_label=True,
                        **extra)  # fmt: skip
    assert is_multi_label(model) and model.activation == "sigmoid"
    model.compile(optimizer="adam", metrics=["accuracy"])  # loss="auto"
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy) and not model.loss.from_logits
    single = build_model(name, input_shape=(32, 32, 3), **extra)
    assert not is_multi_label(single) and "multi_label" not in single.get_config()


def test_a_logits_head_gives_per_class_sigmoid_probabilities():
    model = build_model("baseline", input_shape=(16, 16, 3), class_names=NAMES,
                        multi_label=True, classifier_activation=None)  # fmt: skip
    assert model.activation is None and compile_model(model).loss.from_logits
    logits = np.asarray(model(_colour_photos(4)[0] / 255.0, training=False))
    probs = np.asarray(probabilities(model, logits))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), rtol=1e-5)  # per class


def test_a_multi_label_model_learns_several_classes_per_photo_and_keeps_them_when_saved(
    tmp_path,
):
    keras.utils.set_random_seed(0)
    model = build_model("baseline", input_shape=(16, 16, 3), class_names=NAMES,
                        multi_label=True, filters=[8], dense_units=16, dropout=0.0)  # fmt: skip
    compile_model(model, learning_rate=3e-3)
    images, targets = _colour_photos(256)
    model.fit(images, targets, epochs=8, batch_size=32, verbose=0)
    test_images, test_targets = _colour_photos(64, seed=1)
    shown = np.asarray(model.predict(test_images, verbose=0)) >= 0.5
    assert (shown == test_targets.astype(bool)).all(axis=1).mean() >= 0.8  # exact match
    model.class_thresholds = [0.4, 0.5, 0.625]
    model.save(tmp_path / "model.keras")
    again = load_model(tmp_path / "model.keras")
    assert is_multi_label(again) and again.class_names == NAMES
    assert again.class_thresholds == [0.4, 0.5, 0.625]
    np.testing.assert_allclose(again.predict(test_images, verbose=0),
                               model.predict(test_images, verbose=0), atol=1e-6)  # fmt: skip


def test_class_thresholds_are_checked():
    model = build_model("baseline", input_shape=(16, 16, 3), class_names=NAMES, multi_label=True)
    assert model.class_thresholds is None  # 0.5 each until fitted
    for bad in ([0.5, 0.5], [0.5, 0.5, 1.5]):
        with pytest.raises(InvalidArgumentError, match="one number in 0..1 per class"):
            model.class_thresholds = bad
    with pytest.raises(InvalidArgumentError, match="of a multi-label classifier"):
        build_model("baseline", input_shape=(16, 16, 3)).class_thresholds = [0.5, 0.5]


def test_what_does_not_support_multi_label_yet_refuses_it_by_name(tmp_path, synthetic_splits):
    from catdog.deploy.export import export
    from catdog.deploy.predict import Predictor
    from catdog.report.evaluation import evaluate
    from catdog.training.calibration import calibrate
    from catdog.training.fit import train

    model = build_model("baseline", input_shape=(64, 64, 3), class_names=["cats", "dogs"],
                        multi_label=True, filters=[4], dense_units=8)  # fmt: skip
    calls = {
        "calibrate": lambda: calibrate(model, synthetic_splits),
        "evaluate": lambda: evaluate(model, synthetic_splits),
        "The SavedModel export": lambda: export(model, tmp_path / "m", format="tf_saved_model"),
    }
    for what, call in calls.items():
        with pytest.raises(InvalidArgumentError, match=f"{what} does not support multi-label"):
            call()
    with pytest.raises(InvalidArgumentError, match="the data gives each photo one class"):
        train(model, synthetic_splits, 1)
    single = build_model("baseline", input_shape=(64, 64, 3), filters=[4], dense_units=8)
    several = dataclasses.replace(synthetic_splits, multi_label=True)
    with pytest.raises(InvalidArgumentError, match="build it with multi_label=True"):
        train(single, several, 1)
    for what, call in {  # single-label tools on multi-label data
        "evaluate": lambda: evaluate(single, several),
        "calibrate": lambda: calibrate(single, several),
        "tune": lambda: _tune(several, tmp_path),
    }.items():
        with pytest.raises(InvalidArgumentError, match=f"{what} takes one class per image"):
            call()
    pair = (synthetic_splits.train, synthetic_splits.validation)  # class indices (batch,)
    with pytest.raises(InvalidArgumentError, match=r"multi-hot labels of shape \(batch, 2\)"):
        train(model, pair, 1)
    probs = Predictor(model)(np.zeros((2, 64, 64, 3)))  # probabilities, one per class
    assert probs.shape == (2, 2) and ((probs >= 0) & (probs <= 1)).all()
    with pytest.raises(InvalidArgumentError, match="pass multi_label=True"):
        build_model("baseline", classifier_activation="sigmoid")


def _tune(splits, folder):
    pytest.importorskip("keras_tuner")
    from catdog.training.tuning import tune

    return tune(splits, max_trials=1, epochs=1, directory=folder / "tuning")
