import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import catdog
from catdog.deploy.predict import predict
from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.report.evaluation import evaluate


def _dataset(images, labels, batch=4):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def test_report_numbers_match_a_hand_computation(rng):
    model = catdog.build_baseline_model(
        input_shape=(32, 32, 3), num_classes=3, filters=(4,), dense_units=8
    )
    images = rng.uniform(0, 255, (10, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], dtype="int32")
    files = [f"img{i}.jpg" for i in range(10)]
    report = evaluate(model, _dataset(images, labels), ["a", "b", "c"], files=files)
    probs = model.predict(images, verbose=0)
    predicted = probs.argmax(1)
    assert report.accuracy == pytest.approx(np.mean(predicted == labels))
    assert report.loss == pytest.approx(
        float(np.mean(-np.log(np.clip(probs[np.arange(10), labels], 1e-7, 1)))), rel=1e-4
    )
    expected = np.zeros((3, 3), int)
    for t, p in zip(labels, predicted, strict=True):
        expected[t, p] += 1
    assert report.confusion == expected.tolist()
    assert report.baseline == pytest.approx(0.4)
    for i, name in enumerate("abc"):
        tp = expected[i, i]
        recall = tp / expected[i].sum()
        assert report.per_class[name].recall == pytest.approx(recall)
        assert report.per_class[name].support == expected[i].sum()
    wrong = [m.path for m in report.misclassified]
    assert sorted(wrong) == sorted(files[i] for i in np.flatnonzero(predicted != labels))
    confidences = [m.confidence for m in report.misclassified]
    assert confidences == sorted(confidences, reverse=True)
    text = str(report)
    assert "accuracy" in text and "confusion matrix" in text and "precision" in text


def test_report_on_splits_and_save(synthetic_splits, tmp_path):
    model = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
    report = evaluate(model, synthetic_splits)
    assert report.count == len(synthetic_splits.files["test"])
    # paths relative to the data folder (report.data); path_of gives the full one
    assert all(not Path(m.path).is_absolute() for m in report.misclassified)
    assert all(report.path_of(m) in synthetic_splits.files["test"] for m in report.misclassified)
    txt, js = report.save(tmp_path)
    assert json.loads(js.read_text())["accuracy"] == pytest.approx(report.accuracy)
    assert txt.read_text().startswith("examples:")


def test_logit_models_are_scored_with_softmax(rng):
    model = catdog.build_baseline_model(
        input_shape=(32, 32, 3), filters=(4,), dense_units=8, classifier_activation=None
    )
    images = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    report = evaluate(model, _dataset(images, np.zeros(6, "int32")), ["a", "b"])
    assert 0 <= report.loss < 1e6 and all(0.5 <= m.confidence <= 1 for m in report.misclassified)


def test_evaluate_errors(rng):
    model = catdog.build_baseline_model(input_shape=(32, 32, 3), filters=(4,), dense_units=8)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    with pytest.raises(InvalidArgumentError, match="3 class names"):
        evaluate(model, _dataset(images, np.zeros(4, "int32")), ["a", "b", "c"])
    with pytest.raises(InvalidArgumentError, match="class_names"):
        evaluate(model, _dataset(images, np.zeros(4, "int32")))


def test_predict_files_of_any_format(tmp_path, rng):
    model = catdog.build_baseline_model(input_shape=(48, 48, 3), filters=(4,), dense_units=8)
    pixels = rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)
    paths = []
    for name, mode in [
        ("a.jpg", "RGB"),
        ("b.png", "RGBA"),
        ("c.png", "L"),
        ("d.bmp", "RGB"),
        ("e.gif", "P"),
        ("f.jpg", "CMYK"),
    ]:
        Image.fromarray(pixels).convert(mode).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    results = predict(model, paths, ["cats", "dogs"])
    assert [r.path for r in results] == paths
    for r in results:
        assert r.class_name in ("cats", "dogs")
        assert r.probability == pytest.approx(max(r.probabilities.values()))
        assert sum(r.probabilities.values()) == pytest.approx(1, rel=1e-5)
    # the same image as an array gives the same answer as the JPEG decoded by predict
    array = catdog.data.images.load_images(paths[:1], (48, 48))
    assert predict(model, array, ["cats", "dogs"])[0].probability == pytest.approx(
        results[0].probability, rel=1e-5
    )


def test_predict_errors(tmp_path):
    model = catdog.build_baseline_model(input_shape=(32, 32, 3), filters=(4,), dense_units=8)
    (tmp_path / "note.jpg").write_text("not an image")
    with pytest.raises(InvalidArgumentError, match="not a readable image"):
        predict(model, [tmp_path / "note.jpg"])
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        predict(model, [tmp_path / "missing.png"])
    with pytest.raises(InvalidArgumentError, match="shape"):
        predict(model, np.zeros((2, 16, 16, 3)))
    assert predict(model, np.zeros((32, 32, 3)))[0].class_name in ("class_0", "class_1")
