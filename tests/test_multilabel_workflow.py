"""Multi-label, end to end in the library: a labels file, a leak-free split, a multi-label
model trained by catdog's ``train`` (end to end, and on cached features), thresholds fitted on
the validation split, scores with intervals on the test split."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from catdog.data.multilabel import from_label_table
from catdog.data.synthetic import make_multilabel_dataset
from catdog.errors import InvalidArgumentError
from catdog.models.registry import build_model
from catdog.models.saving import load_model
from catdog.report.multilabel_evaluation import evaluate_multilabel
from catdog.training.class_thresholds import set_class_thresholds
from catdog.training.fit import train

pytestmark = pytest.mark.slow  # two trainings (about 30 s)


@pytest.fixture(scope="module")
def multilabel_splits(tmp_path_factory):
    labels = make_multilabel_dataset(tmp_path_factory.mktemp("ml"), images=320, image_size=(32, 32))
    return from_label_table(labels, image_size=(32, 32), batch_size=16, seed=3)


def test_a_cnn_learns_several_classes_per_photo_and_is_scored_at_its_thresholds(
    multilabel_splits, tmp_path
):
    keras.utils.set_random_seed(0)
    model = build_model("baseline", input_shape=(32, 32, 3), multi_label=True,
                        filters=[16, 32], dense_units=64, dropout=0.0)  # fmt: skip
    train(model, multilabel_splits, 10, learning_rate=3e-3, verbose=0)
    assert model.class_names == ["cats", "dogs"]  # from the data
    thresholds = set_class_thresholds(model, multilabel_splits)
    assert len(thresholds) == 2 and all(0 < t < 1 for t in thresholds)
    scores = evaluate_multilabel(model, multilabel_splits, draws=100)
    assert scores["count"] == len(multilabel_splits.files["test"])
    assert scores["thresholds"] == thresholds and scores["class_names"] == ["cats", "dogs"]
    # 0.70-0.86 and 0.94-0.98 over three seeds here; chance is 0.25 and about 0.5
    assert scores["exact_match"] >= 0.6 and scores["map"] >= 0.85
    low, high = scores["exact_match_interval"]
    assert low <= scores["exact_match"] <= high
    assert set(scores["mistakes"]) == {"cats", "dogs"}
    json.dumps(scores)  # JSON-ready
    model.save(tmp_path / "model.keras")
    again = load_model(tmp_path / "model.keras")
    assert again.class_thresholds == thresholds
    rescored = evaluate_multilabel(again, multilabel_splits, draws=100)
    assert rescored["exact_match"] == scores["exact_match"]
    again.class_names = ["dogs", "cats"]  # the other order: its columns would be swapped
    with pytest.raises(InvalidArgumentError, match="are not the data's"):
        evaluate_multilabel(again, multilabel_splits)
    single = build_model("baseline", input_shape=(32, 32, 3), filters=[4], dense_units=8)
    with pytest.raises(InvalidArgumentError, match="needs a multi-label model"):
        set_class_thresholds(single, multilabel_splits)


def test_a_transfer_model_trains_its_head_on_cached_features_under_binary_cross_entropy(
    multilabel_splits,
):
    keras.utils.set_random_seed(0)
    model = build_model("transfer", input_shape=(32, 32, 3), weights=None, multi_label=True)
    history = train(model, multilabel_splits, 2, cache_features=True, verbose=0)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert np.isfinite(history.history["loss"]).all() and "val_accuracy" in history.history
    scores = evaluate_multilabel(model, multilabel_splits, draws=20)
    assert 0 <= scores["exact_match"] <= 1 and len(scores["per_class"]) == 2


def test_predict_names_every_class_past_its_threshold_alike_from_keras_and_litert(
    multilabel_splits, tmp_path, capsys
):
    from catdog.cli import main
    from catdog.deploy.export import export
    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.predict import predict

    keras.utils.set_random_seed(1)
    model = build_model("baseline", input_shape=(32, 32, 3), multi_label=True, filters=[8],
                        dense_units=16, classifier_activation=None)  # fmt: skip
    train(model, multilabel_splits, 2, verbose=0)
    photos = multilabel_splits.files["test"][:12]
    probs = np.array([list(p.probabilities.values()) for p in predict(model, photos)])
    model.class_thresholds = [_in_widest_gap(column) for column in probs.T]  # some shown, some not
    found = predict(model, photos)
    assert {len(p.labels) for p in found} >= {0, 1} or {len(p.labels) for p in found} >= {1, 2}
    for p in found:
        shown = [n for n, t in zip(["cats", "dogs"], model.class_thresholds, strict=True)
                 if p.probabilities[n] >= t]  # fmt: skip
        assert p.labels == shown and p.class_name == ";".join(shown)
    model.save(tmp_path / "model.keras")
    export(model, tmp_path / "model.tflite", format="litert")
    lite = LiteRTModel(tmp_path / "model.tflite")
    assert lite.multi_label and lite.class_thresholds == model.class_thresholds
    assert [p.labels for p in predict(lite, photos)] == [p.labels for p in found]
    for name in ("model.keras", "model.tflite"):  # the command line, and its CSV
        out = tmp_path / f"{name}.csv"
        assert main(["predict", str(tmp_path / name), *photos, "--output", str(out)]) == 0
        lines = out.read_text().splitlines()
        assert lines[0].split(",")[-3:] == ["label_cats", "label_dogs", "error"]
        decided = [line.split(",")[-3:-1] for line in lines[1:]]
        assert decided == [[str(int(n in p.labels)) for n in ("cats", "dogs")] for p in found]
    capsys.readouterr()


def _in_widest_gap(probs: np.ndarray) -> float:
    """A threshold in the middle of the widest gap between the middle half of ``probs``: far
    from every probability, so TensorFlow and LiteRT (whose outputs differ in the last
    digits) decide alike on every CPU."""
    ranked = np.sort(probs)[len(probs) // 4 : len(probs) - len(probs) // 4]
    widest = int(np.argmax(np.diff(ranked)))
    return round(float(ranked[widest] + ranked[widest + 1]) / 2, 6)
