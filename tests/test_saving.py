import numpy as np
import pytest
import tensorflow as tf

import catdog
from catdog.deploy.export import export, load_model
from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError

from .conftest import random_images


@pytest.fixture(scope="module")
def model_and_images():
    model = catdog.build_preprocessed_model(
        input_shape=(48, 48, 3), filters=(8, 8), dense_units=16, zoom=0.1
    )
    images = random_images(np.random.default_rng(1), 5, 48)
    return model, images, model.predict(images, verbose=0)


def test_keras_format(model_and_images, tmp_path):
    model, images, expected = model_and_images
    path = export(model, tmp_path / "m.keras", format="keras")
    np.testing.assert_allclose(load_model(path).predict(images, verbose=0), expected, atol=1e-6)


def test_saved_model_format(model_and_images, tmp_path):
    model, images, expected = model_and_images
    path = export(model, tmp_path / "served", format="saved_model")
    served = tf.saved_model.load(str(path))
    got = served.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # exporting again replaces the folder, but only when asked to
    with pytest.raises(OutputError, match="already exists"):
        export(model, path, format="saved_model")
    export(model, path, format="saved_model", overwrite=True)
    assert (path / "saved_model.pb").exists()


def _tflite_predict(path, images):
    interpreter = tf.lite.Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def test_tflite_format(model_and_images, tmp_path):
    model, images, expected = model_and_images
    path = export(model, tmp_path / "m.tflite", format="tflite")
    got = _tflite_predict(path, images)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.slow
def test_tflite_transfer_model(tmp_path):
    model = catdog.build_transfer_model(input_shape=(64, 64, 3), weights=None)
    images = random_images(np.random.default_rng(2), 3, 64)
    got = _tflite_predict(export(model, tmp_path / "t.tflite", format="tflite"), images)
    np.testing.assert_allclose(got, model.predict(images, verbose=0), atol=1e-4)


def test_inference_model_drops_augmentation_only(model_and_images):
    model, images, expected = model_and_images
    lean = catdog.models.classifier.inference_model(model)
    assert not any(type(layer).__name__.startswith("Random") for layer in lean.layers)
    assert len(lean.layers) == len(model.layers) - 3
    np.testing.assert_allclose(lean.predict(images, verbose=0), expected, atol=1e-6)
    plain = catdog.build_baseline_model(input_shape=(32, 32, 3))
    assert catdog.models.classifier.inference_model(plain) is plain


def test_export_errors(model_and_images, tmp_path):
    model = model_and_images[0]
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        export(model, tmp_path / "m.pdf", format="pdf")
    with pytest.raises(InvalidArgumentError, match=r"\.keras"):
        export(model, tmp_path / "m.h5", format="keras")
    with pytest.raises(InputFileNotFoundError):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_text("junk")
    with pytest.raises(InvalidArgumentError, match="Could not load"):
        load_model(tmp_path / "junk.keras")
