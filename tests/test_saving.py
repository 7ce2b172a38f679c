from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import catdog
from catdog.deploy.export import export, load_model
from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError

from .helpers import copy_run, one_line_error, random_images, snapshot, tiny


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


def test_export_never_deletes_what_it_did_not_write(finished_run, tmp_path, capsys, monkeypatch):
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match="already exists"):
        export(model, folder, format="saved_model")
    with pytest.raises(OutputError, match="does not hold a SavedModel"):
        export(model, folder, format="saved_model", overwrite=True)
    assert (folder / "notes.txt").read_text() == "precious"

    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run.out)
    line = one_line_error(
        capsys, "export", run.out / "model.keras", "--format", "saved_model", "--out", run.out
    )
    assert "already exists" in line and snapshot(run.out) == before
    monkeypatch.chdir(folder)
    line = one_line_error(
        capsys, "export", run.out / "model.keras", "--format", "saved_model", "--out", "."
    )
    assert "already exists" in line and (folder / "notes.txt").read_text() == "precious"


def test_output_path_problems_are_one_line_errors(finished_run, tmp_path, capsys):
    model = finished_run.out / "model.keras"
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder.tflite").mkdir()
    cases = [
        (tmp_path / "a_file" / "m.tflite", "tflite", "not a folder"),
        (tmp_path / "a_folder.tflite", "tflite", "is a folder"),
        (Path("/proc/m.tflite"), "tflite", "Cannot write"),
        (tmp_path / "a_file" / "served", "saved_model", "not a folder"),
    ]
    for out, format_, message in cases:
        line = one_line_error(capsys, "export", model, "--format", format_, "--out", out)
        assert message in line, line


def test_a_failed_export_changes_neither_the_model_nor_its_labels(tmp_path):
    from catdog.deploy.export import _write_with_labels

    pets = tiny(["cats", "dogs"])
    path = export(pets, tmp_path / "m.tflite", format="litert")
    before = path.read_bytes()

    def torn(tmp):
        tmp.write_bytes(b"half a model")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write_with_labels(path, ["a", "b"], torn)
    assert path.read_bytes() == before
    assert (tmp_path / "m.tflite.labels.txt").read_text() == "cats\ndogs\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.labels.txt"]


def test_overwriting_a_saved_model_folder_keeps_files_it_did_not_write(tmp_path):
    model = tiny(["cats", "dogs"])
    folder = export(model, tmp_path / "served", format="saved_model")
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match=r"did not write \(notes\.txt\)"):
        export(model, folder, format="saved_model", overwrite=True)
    assert (folder / "notes.txt").read_text() == "precious" and (folder / "saved_model.pb").exists()
    (folder / "notes.txt").unlink()
    export(model, folder, format="saved_model", overwrite=True)  # only its own files: replaced
    assert (folder / "saved_model.pb").is_file()
