"""Calibration and the unknown answer: temperature scaling, the out-of-distribution score and its
threshold, kept inside the model, its predictions, its report and every export."""

import json
from pathlib import Path

import numpy as np
import pytest

from catdog import build_model, calibrate, export, load_model
from catdog.data.images import load_images
from catdog.data.synthetic import make_unknown_images
from catdog.deploy.predict import Predictor, predict, predict_scores
from catdog.errors import InvalidArgumentError
from catdog.models.confidence import Confidence, confidence_layer, unknown_threshold
from catdog.report.reliability import expected_calibration_error, negative_log_likelihood
from catdog.training.calibration import fit_temperature, scaled

from .helpers import random_images

SIZE = 64


def _overconfident(rng, n: int):
    """Probabilities of an overconfident two-class model: right about 80% of the time,
    about 99% sure every time."""
    labels = rng.integers(0, 2, n)
    signal = np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.2, n)
    logits = np.stack([-signal, signal], axis=1) * 6
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), labels


def test_temperature_scaling_lowers_the_ece_on_held_out_data_and_keeps_every_argmax(rng):
    validation, test = _overconfident(rng, 500), _overconfident(rng, 500)
    temperature = fit_temperature(*validation)
    probs, labels = test
    after = scaled(probs, temperature)
    assert temperature > 2  # overconfident: softened
    before_ece, after_ece = (
        expected_calibration_error(probs, labels),
        expected_calibration_error(after, labels),
    )
    assert after_ece < before_ece / 2 and after_ece < 0.05
    assert negative_log_likelihood(after, labels) < negative_log_likelihood(probs, labels)
    assert (after.argmax(axis=1) == probs.argmax(axis=1)).all()


@pytest.fixture(scope="module")
def trained(synthetic_splits):
    """A small CNN trained for a few epochs on the generated cats and dogs (64x64)."""
    import keras

    keras.utils.set_random_seed(0)
    model = build_model("baseline", input_shape=(SIZE, SIZE, 3), class_names=["cats", "dogs"])
    from catdog import train

    train(model, synthetic_splits, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def unknown_files(tmp_path_factory):
    return make_unknown_images(tmp_path_factory.mktemp("other"), 30, (SIZE, SIZE), seed=7)


def test_calibrated_model_keeps_its_fit_when_saved_and_its_argmax(
    trained, synthetic_splits, tmp_path
):
    images = np.concatenate([x for x, _ in synthetic_splits.validation])
    before = Predictor(trained)(images)
    result = calibrate(trained, synthetic_splits, unknown_coverage=None)
    assert confidence_layer(trained).method is None and unknown_threshold(trained) is None
    after = Predictor(trained)(images)  # calibrate dropped the cached predictor
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()
    np.testing.assert_allclose(after, scaled(before, result.temperature), atol=1e-5)
    for split in ("validation", "test"):
        assert set(result.metrics[split]["after"]) >= {"ece", "nll", "brier"}
    assert (
        result.metrics["validation"]["after"]["nll"]
        <= result.metrics["validation"]["before"]["nll"] + 1e-6
    )  # the fit minimises it
    trained.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")  # a .keras copied alone keeps the temperature
    assert loaded.get_layer("confidence").describe()["temperature"] == pytest.approx(
        result.temperature
    )
    np.testing.assert_allclose(Predictor(loaded)(images), after, atol=1e-6)


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_a_held_out_kind_is_answered_unknown(method, trained, synthetic_splits, unknown_files):
    result = calibrate(trained, synthetic_splits, method=method, k=1, unknown_coverage=0.95)
    assert result.coverage_validation >= 0.95
    other = predict(trained, unknown_files)
    flagged = np.mean([p.class_name == "unknown" for p in other])
    assert flagged >= 0.8, f"{method} flags {flagged:.0%} of the held-out kind"
    assert all(p.unknown == (p.class_name == "unknown") and p.ood_score is not None for p in other)
    test = predict(trained, synthetic_splits.files["test"] + synthetic_splits.files["validation"])
    assert np.mean([not p.unknown for p in test]) >= 0.8  # about the stated share accepted
    names = {p.class_name for p in other}
    assert names <= {"unknown", "cats", "dogs"}
    assert all(sum(p.probabilities.values()) == pytest.approx(1) for p in other)


def test_evaluate_reports_coverage_accepted_accuracy_and_risk_coverage(trained, synthetic_splits):
    from catdog import evaluate

    calibrate(trained, synthetic_splits, unknown_coverage=0.99)
    report = evaluate(trained, synthetic_splits)
    assert report.unknown["method"] == "knn" and 0 <= report.coverage <= 1  # the default
    assert report.unknown["accepted"] <= report.count
    assert report.risk_coverage[-1][0] == 1.0
    text = str(report)
    assert "coverage" in text and "risk-coverage" in text
    again = type(report).from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.unknown == report.unknown and again.coverage == report.coverage


def test_a_model_saved_before_calibration_loads_and_predicts_as_before(rng, tmp_path):
    model = build_model("baseline", input_shape=(32, 32, 3), class_names=["a", "b"])
    images = random_images(rng, 4, 32)
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "old.keras")  # no Confidence layer: what catdog saved before
    loaded = load_model(tmp_path / "old.keras")
    assert confidence_layer(loaded) is None and unknown_threshold(loaded) is None
    probs, scores = predict_scores(loaded, images)
    assert scores is None
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert all(not p.unknown and p.ood_score is None for p in predict(loaded, images))


def test_the_confidence_layer_is_serializable_and_checks_its_arguments():
    from catdog.errors import InvalidArgumentError

    layer = Confidence("knn", num_classes=2, bank_size=3, k=2, coverage=0.9)
    again = Confidence.from_config(layer.get_config())
    assert (again.method, again.k, again.bank_size, again.coverage) == ("knn", 2, 3, 0.9)
    with pytest.raises(InvalidArgumentError, match="method"):
        Confidence("energy")
    with pytest.raises(InvalidArgumentError, match="k must be"):
        Confidence("knn", bank_size=2, k=3)


def _decisions(probs, scores, threshold):
    return probs.argmax(axis=1), scores > np.float32(threshold)


def _agree(name, found, expected, scores, threshold):
    """Same classes; same unknown decisions except within 1e-4 of the threshold."""
    classes, unknown = found
    near = np.abs(scores - threshold) <= 1e-4 * max(1.0, abs(threshold))
    assert (classes == expected[0]).all(), name
    assert (unknown == expected[1])[~near].all(), name


@pytest.mark.slow
def test_every_export_gives_the_same_classes_and_unknown_decisions(
    trained, synthetic_splits, unknown_files, tmp_path
):
    import tensorflow as tf

    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.metadata import read_litert_metadata

    calibrate(trained, synthetic_splits, unknown_coverage=0.99)
    files = [*map(str, unknown_files[:10]), *synthetic_splits.files["test"]]
    pixels = load_images(files, (SIZE, SIZE))
    threshold = unknown_threshold(trained)
    probs, scores = predict_scores(trained, pixels)
    expected = _decisions(probs, scores, threshold)
    assert expected[1][:10].mean() >= 0.8  # the held-out kind, mostly unknown

    keras_file = load_model(export(trained, tmp_path / "m.keras"))
    _agree("keras", _decisions(*predict_scores(keras_file, pixels), threshold), expected, scores,
           threshold)  # fmt: skip

    served = tf.saved_model.load(str(export(trained, tmp_path / "saved", "tf_saved_model")))
    data = tf.constant([Path(f).read_bytes() for f in files])
    out = {k: v.numpy() for k, v in served.signatures["serving_default"](image_bytes=data).items()}
    _agree("saved_model", (out["class_index"], out["is_unknown"]), expected, scores, threshold)
    names = [n.decode() for n in out["class_name"]]
    assert all((n == "unknown") == u for n, u in zip(names, out["is_unknown"], strict=True))

    lite = LiteRTModel(export(trained, tmp_path / "m.tflite", "litert"))
    assert lite.scored and lite.threshold == pytest.approx(threshold)
    meta = read_litert_metadata(tmp_path / "m.tflite")
    assert meta["class_names"] == ["cats", "dogs"] and meta["input"]["range"] == [0, 255]
    _agree("litert", _decisions(*lite.scores(pixels), lite.threshold), expected, scores, threshold)
    (tmp_path / "m.tflite.labels.txt").unlink()  # the names are inside the file too
    lite = LiteRTModel(tmp_path / "m.tflite")
    assert lite.class_names == ["cats", "dogs"]
    from_file = predict(lite, files)  # what `catdog predict m.tflite` prints
    assert [p.unknown for p in from_file] == list(lite.scores(pixels)[1] > np.float32(threshold))

    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    session = onnxruntime.InferenceSession(str(export(trained, tmp_path / "m.onnx", "onnx")))
    outputs = session.run(None, {session.get_inputs()[0].name: pixels})
    onnx_probs = next(o for o in outputs if o.ndim == 2)
    onnx_scores = next(o for o in outputs if o.ndim == 1)
    props = session.get_modelmeta().custom_metadata_map
    assert json.loads(props["threshold"]) == pytest.approx(threshold)
    _agree("onnx", _decisions(onnx_probs, onnx_scores, threshold), expected, scores, threshold)


def test_cached_features_give_what_a_pass_over_the_images_gives(synthetic_splits):
    from catdog import build_transfer_model
    from catdog.training.calibration import feature_pass, head_pass
    from catdog.training.feature_cache import extract_split_features

    model = build_transfer_model((SIZE, SIZE, 3), weights=None, class_names=["cats", "dogs"])
    embeddings, probs, labels = feature_pass(model, synthetic_splits.validation)
    assert embeddings.shape[1] == 1280  # the base's channels, averaged: the embedding
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    features = extract_split_features(model, synthetic_splits, copies=1)
    n = len(synthetic_splits.files["train"])
    assert features.head["train"].shape == (2 * n, 1280)  # the plain pass and one copy
    assert features.embeddings["train"].shape == (n, 1280)
    again = head_pass(model, *features.plain("validation"))
    np.testing.assert_allclose(again[0], embeddings, atol=1e-4)
    np.testing.assert_allclose(again[1], probs, atol=1e-5)
    assert (again[2] == labels).all()


def test_a_knn_threshold_keeps_its_promise_on_new_images():
    """The out-of-fold conformal threshold accepts about the asked share of new images from
    the same source, and rejects images from another."""
    from catdog.training.neighbours import knn_bank, knn_scores, knn_threshold

    rng = np.random.default_rng(0)
    centre = rng.normal(size=32)

    def draw(n, shift=0.0):
        return centre + rng.normal(size=(n, 32)) + shift

    bank = knn_bank(draw(600), size=4096)
    threshold = knn_threshold(bank, k=5, coverage=0.9)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    fresh = knn_scores(unit(draw(3000)), bank, 5)
    foreign = knn_scores(unit(draw(500, shift=rng.normal(size=32) * 2)), bank, 5)
    assert 0.06 <= np.mean(fresh > threshold) <= 0.14, np.mean(fresh > threshold)
    assert np.mean(foreign > threshold) >= 0.9
    with pytest.raises(InvalidArgumentError, match="too few to set its threshold"):
        knn_threshold(bank[:5], k=5, coverage=0.9)


def test_a_transfer_model_answers_unknown_on_its_embedding_alike_in_both_engines(
    synthetic_splits, tmp_path
):
    from catdog import build_transfer_model
    from catdog.models.weights import make_stand_in_weights

    images = np.concatenate([x.numpy() for x, _ in synthetic_splits.train.take(2)])
    weights = make_stand_in_weights(tmp_path / "w.weights.h5", images)
    model = build_transfer_model((SIZE, SIZE, 3), weights=weights, class_names=["cats", "dogs"])
    calibrate(model, synthetic_splits, unknown_coverage=0.9)
    layer = confidence_layer(model)
    names = [each.name for each in model.layers]
    assert names.index("confidence") == names.index("base") + 1  # it sees the feature map
    assert (layer.method, layer.k, layer.embedding) == ("knn", 5, True)
    pixels = load_images(synthetic_splits.files["test"], (SIZE, SIZE))
    tf_probs, tf_scores = predict_scores(model, pixels, engine="tensorflow")
    lite_probs, lite_scores = predict_scores(model, pixels, engine="litert")
    np.testing.assert_allclose(lite_scores, tf_scores, atol=1e-3)
    np.testing.assert_allclose(lite_probs, tf_probs, atol=1e-3)
    # the layer between the base and its pooling is passed over where the pooled features count
    from catdog.training.audit import feature_extractor
    from catdog.training.feature_cache import split_transfer_model

    extractor, head = split_transfer_model(model)
    raw = np.asarray(head(extractor(pixels, training=False), training=False))
    np.testing.assert_allclose(raw.argmax(axis=1), tf_probs.argmax(axis=1))
    audited, _, _ = feature_extractor(model, ["cats", "dogs"])
    assert audited.output_shape == (None, 1280)


def _hostile_pixels() -> np.ndarray:
    """Images no camera makes: NaN pixels, and pixels of +-1e30 (an overflow upstream)."""
    return np.stack([
        np.full((SIZE, SIZE, 3), np.nan, "float32"),
        np.full((SIZE, SIZE, 3), 1e30, "float32"),
        np.full((SIZE, SIZE, 3), -1e30, "float32"),
    ])  # fmt: skip


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_non_finite_pixels_are_unknown_in_both_engines(method, trained, synthetic_splits):
    calibrate(trained, synthetic_splits, method=method, unknown_coverage=0.95)
    for engine in ("tensorflow", "litert"):
        found = predict(trained, _hostile_pixels(), engine=engine)
        assert [p.class_name for p in found] == ["unknown"] * 3, (engine, found)
        assert all(p.unknown for p in found), (engine, found)
        assert all(p.ood_score > unknown_threshold(trained) for p in found), (engine, found)


def test_non_finite_probabilities_never_name_a_class():
    from catdog.deploy.predict import named_predictions
    from catdog.models.confidence import past_any_threshold

    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8]], "float32")
    scores = np.asarray(past_any_threshold(np.array([0.1, 0.1, np.nan], "float32"), probs))
    assert scores.tolist() == [pytest.approx(0.1), float("inf"), float("inf")]
    found = named_predictions(probs, ["cats", "dogs"], None, scores=scores, threshold=0.5)
    assert [p.class_name for p in found] == ["cats", "unknown", "unknown"]
    without_score = named_predictions(probs, ["cats", "dogs"], None)
    assert [p.class_name for p in without_score] == ["cats", "unknown", "dogs"]


def test_a_non_finite_threshold_is_refused_at_load_and_export(trained, synthetic_splits, tmp_path):
    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.metadata import add_litert_metadata, read_litert_metadata
    from catdog.errors import InvalidArgumentError

    calibrate(trained, synthetic_splits, unknown_coverage=0.95)
    lite = export(trained, tmp_path / "m.tflite", "litert")
    layer = confidence_layer(trained)
    good = float(layer.threshold.numpy())
    try:
        layer.threshold.assign(float("nan"))
        trained.save(tmp_path / "nan.keras")
        with pytest.raises(InvalidArgumentError, match="unknown threshold of nan"):
            load_model(tmp_path / "nan.keras")
        with pytest.raises(InvalidArgumentError, match="unknown threshold of nan"):
            export(trained, tmp_path / "nan.onnx", "onnx")
        assert not (tmp_path / "nan.onnx").exists()
    finally:
        layer.threshold.assign(good)
    meta = {**read_litert_metadata(lite), "threshold": float("nan")}
    edited = tmp_path / "edited.tflite"
    edited.write_bytes(add_litert_metadata(lite.read_bytes(), meta))
    with pytest.raises(InvalidArgumentError, match="unknown threshold of nan"):
        LiteRTModel(edited)


def test_a_picture_in_the_training_data_is_never_unknown_by_float_noise(tmp_path, caplog):
    """One picture per class saved 20 times: its score is float noise above 0, and the
    calibration on two validation pictures warns that it is rough."""
    import logging

    from PIL import Image, PngImagePlugin

    from catdog import from_directory, train

    rng = np.random.default_rng(3)
    for name in ("cats", "dogs"):
        (tmp_path / "data" / name).mkdir(parents=True)
        picture = Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
        for i in range(20):  # the same pixels, other bytes (byte duplicates share a split)
            info = PngImagePlugin.PngInfo()
            info.add_text("copy", str(i))
            picture.save(tmp_path / "data" / name / f"{i}.png", pnginfo=info)
    splits = from_directory(tmp_path / "data", image_size=(SIZE, SIZE), batch_size=8)
    model = build_model("baseline", input_shape=(SIZE, SIZE, 3), class_names=["cats", "dogs"])
    train(model, splits, epochs=1, verbose=0)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        calibrate(model, splits, method="knn", unknown_coverage=0.99)
    assert "Calibration rests on" in caplog.text
    found = predict(model, splits.files["train"][:4], engine="tensorflow")
    assert not any(p.unknown for p in found), found


def test_a_temperature_at_an_end_of_its_range_is_named(caplog):
    import logging

    from catdog.training.calibration import TEMPERATURE_RANGE, _warn_if_rough

    with caplog.at_level(logging.WARNING, logger="catdog"):
        _warn_if_rough(500, 1.3)
        assert caplog.text == ""
        _warn_if_rough(500, TEMPERATURE_RANGE[0])
        _warn_if_rough(500, TEMPERATURE_RANGE[1])
    assert caplog.text.count("at an end of the range searched") == 2
