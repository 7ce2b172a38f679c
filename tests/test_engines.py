"""Inference engines: TensorFlow and LiteRT give the same probabilities; conversions are cached."""

import logging
import sys

import numpy as np
import pytest

import catdog
import catdog.deploy.litert
import catdog.deploy.predict
import catdog.training.fit
from catdog import build_model, build_transfer_model
from catdog.deploy.predict import Predictor, predict
from catdog.errors import InvalidArgumentError, OutputError

from .helpers import random_images, tiny

MODELS = {
    "baseline": lambda: build_model("baseline", input_shape=(48, 48, 3)),
    "augmented": lambda: build_model("augmented", input_shape=(48, 48, 3)),
    "preprocessed": lambda: build_model("preprocessed", input_shape=(48, 48, 3)),
    "transfer": lambda: build_transfer_model((48, 48, 3), weights=None),
    "mobilenet_v3_small": lambda: build_model(
        "mobilenet_v3_small", input_shape=(48, 48, 3), weights=None, classifier_activation=None
    ),
}


FAST = ("baseline",)  # the rest (transfer: about 19 s) run with the slow tests


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in MODELS]
)
def test_litert_equals_tensorflow(name, rng, tmp_path):
    model = MODELS[name]()
    tensorflow = Predictor(model, engine="tensorflow")
    litert = Predictor(model, engine="litert", cache_dir=tmp_path)
    assert (tensorflow.engine, litert.engine) == ("tensorflow", "litert")
    for batch in (1, 5, 1):  # other batch sizes resize the input, no reconversion
        images = random_images(rng, batch, 48)
        expected = tensorflow(images)
        np.testing.assert_allclose(litert(images), expected, atol=1e-4)
        np.testing.assert_allclose(litert(images).sum(axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.glob("*.tflite"))) == 1


def test_conversions_are_cached_on_disk_by_config_and_weights(rng, tmp_path, monkeypatch):
    model = MODELS["baseline"]()
    Predictor(model, engine="litert", cache_dir=tmp_path)
    calls = []
    real = catdog.deploy.litert.litert_flatbuffer
    monkeypatch.setattr(
        catdog.deploy.litert, "litert_flatbuffer", lambda m, **kw: calls.append(m) or real(m, **kw)
    )
    images = random_images(rng, 2, 48)
    first = Predictor(model, engine="litert", cache_dir=tmp_path)(images)
    assert calls == []  # the second predictor read the file: no conversion
    last = model.layers[-1]
    last.kernel.assign(np.zeros(last.kernel.shape))  # other weights (all 0.5), another file
    changed = Predictor(model, engine="litert", cache_dir=tmp_path)
    assert len(calls) == 1 and len(list(tmp_path.glob("*.tflite"))) == 2
    assert not np.allclose(changed(images), first)
    np.testing.assert_allclose(changed(images), 0.5, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


def test_auto_falls_back_to_tensorflow_with_a_notice(rng, tmp_path, monkeypatch, caplog):
    model = MODELS["baseline"]()

    def broken(*_, **__):
        raise RuntimeError("converter failed")

    monkeypatch.setattr(catdog.deploy.litert, "litert_flatbuffer", broken)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        predictor = Predictor(model, engine="auto", cache_dir=tmp_path)
    assert predictor.engine == "tensorflow"
    assert "predicting with TensorFlow" in caplog.text
    assert predictor(random_images(rng, 2, 48)).shape == (2, 2)
    with pytest.raises(InvalidArgumentError, match="Could not convert"):
        Predictor(model, engine="litert", cache_dir=tmp_path)
    with pytest.raises(InvalidArgumentError, match="engine must be one of"):
        Predictor(model, engine="onnx")


def test_without_the_litert_package_tensorflows_interpreter_runs_it(rng, tmp_path, monkeypatch):
    model = MODELS["baseline"]()
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import fails: not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    images = random_images(rng, 3, 48)
    litert = Predictor(model, engine="litert", cache_dir=tmp_path)
    np.testing.assert_allclose(litert(images), Predictor(model)(images), atol=1e-4)


def test_predict_and_the_cache_follow_training(rng, tmp_path, monkeypatch):
    from catdog.models.classifier import compile_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    model = compile_model(MODELS["baseline"](), learning_rate=0.1)
    images = random_images(rng, 4, 48)
    before = [p.probabilities for p in predict(model, images, engine="litert")]
    model.fit(images, np.array([0, 1, 0, 1]), epochs=1, verbose=0)  # the weights move on
    after = [p.probabilities for p in predict(model, images, engine="litert")]
    expected = [p.probabilities for p in predict(model, images, engine="tensorflow")]
    assert before != after
    for got, want in zip(after, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def test_predict_follows_cached_feature_training_and_set_weights(rng, tmp_path, monkeypatch):
    """Training a head on cached features moves no model optimizer; the cache notices anyway."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    model = MODELS["baseline"]()
    images = random_images(rng, 2, 48)
    predict(model, images, engine="litert")
    last = model.layers[-1]
    last.kernel.assign(np.zeros(last.kernel.shape))  # as a head trained elsewhere would
    after = np.array(
        [list(p.probabilities.values()) for p in predict(model, images, engine="litert")]
    )
    np.testing.assert_allclose(after, 0.5, atol=1e-6)


@pytest.mark.slow
def test_feature_extraction_on_litert_equals_tensorflow(synthetic_splits, tmp_path, monkeypatch):
    from catdog.training.feature_cache import (
        extract_features,
        prepare_extraction_engine,
        split_transfer_model,
    )
    from catdog.training.fit import train

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    model = build_transfer_model((64, 64, 3), weights=None, class_names=["cats", "dogs"])
    extractor, _ = split_transfer_model(model)
    assert prepare_extraction_engine(extractor, passes=100) == "tensorflow"  # too few to pay off
    assert prepare_extraction_engine(extractor, passes=10_000) == "litert"
    x_tf, y_tf = extract_features(extractor, synthetic_splits.validation)
    x_lite, y_lite = extract_features(extractor, synthetic_splits.validation, engine="litert")
    np.testing.assert_array_equal(y_lite, y_tf)
    np.testing.assert_allclose(x_lite, x_tf, rtol=1e-4, atol=1e-4 * float(np.abs(x_tf).max()))
    assert len(list((tmp_path / "litert").glob("*.tflite"))) == 1  # converted once, reused
    x_aug, _ = extract_features(extractor, synthetic_splits.validation, 1, engine="litert")
    assert x_aug.shape == (2 * len(x_tf), x_tf.shape[1])
    assert not np.allclose(x_aug[len(x_tf) :], x_tf, atol=0)  # the copy was augmented
    history = train(model, synthetic_splits, 2, cache_features=True, extraction_engine="litert",
                    verbose=0)  # fmt: skip
    assert len(history.history["val_accuracy"]) == 2


def test_auto_extraction_stays_on_tensorflow_when_the_base_does_not_convert(
    tmp_path, monkeypatch, caplog
):
    from catdog.training.feature_cache import prepare_extraction_engine, split_transfer_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def broken(*_, **__):
        raise RuntimeError("converter failed")

    monkeypatch.setattr(catdog.deploy.litert, "litert_flatbuffer", broken)
    extractor, _ = split_transfer_model(build_transfer_model((32, 32, 3), weights=None))
    with caplog.at_level(logging.WARNING, logger="catdog"):
        assert prepare_extraction_engine(extractor, passes=10_000) == "tensorflow"
    assert "extracting features with TensorFlow" in caplog.text


def test_a_damaged_litert_cache_file_is_converted_again(tmp_path, caplog):
    from catdog.deploy.litert import _first_line, cached_litert_file
    from catdog.deploy.predict import Predictor
    from catdog.io import sha256sum

    model = tiny(["cats", "dogs"])
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    expected = Predictor(model)(images)
    path = cached_litert_file(model, tmp_path)
    good = path.read_bytes()
    checksum = path.with_name(path.name + ".sha256")
    assert checksum.read_text().strip() == sha256sum(path)
    damages = {
        "truncated": good[: len(good) // 2],  # litert used to fail on it on every run
        "flipped": good[:-64] + bytes(64),  # loads, but is not the converted model
        "garbage without checksum": b"not a flatbuffer",
    }
    for damage, content in damages.items():
        path.write_bytes(content)
        if "without checksum" in damage:
            checksum.unlink()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="catdog"):
            predictor = Predictor(model, engine="auto", cache_dir=tmp_path)
        assert predictor.engine == "litert", damage
        assert path.read_bytes() == good and checksum.read_text().strip() == sha256sum(path)
        assert f"cached LiteRT file {path} is damaged" in caplog.text, damage
        np.testing.assert_allclose(predictor(images), expected, atol=1e-4)
    checksum.unlink()  # a sound file from before checksums: checked once, then recorded
    assert cached_litert_file(model, tmp_path) == path and checksum.is_file()

    # a cache that cannot be written is named, in a message cut nowhere
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = blocker / ("a-long-folder-name-" * 8) / "litert"
    with pytest.raises(OutputError) as raised:
        Predictor(model, engine="litert", cache_dir=cache)
    message = str(raised.value)
    assert str(cache) in message and message.endswith("or use engine='tensorflow'.")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        assert Predictor(model, engine="auto", cache_dir=cache).engine == "tensorflow"
    assert str(cache) in caplog.text and "Predicting with TensorFlow" in caplog.text
    assert _first_line(ValueError("word " * 100), limit=28) == "word word word word word ..."
