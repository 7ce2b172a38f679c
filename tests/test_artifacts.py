"""Models that travel: class names and preprocessing inside every artifact, reproducible runs."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import catdog
import catdog.data.images
import catdog.deploy.labels
import catdog.runs.job
import catdog.training.fit
from catdog.data.synthetic import make_synthetic_dataset
from catdog.deploy.export import export, load_model, save_model
from catdog.deploy.labels import labels_path
from catdog.deploy.litert import LiteRTModel
from catdog.errors import InvalidArgumentError, OutputError
from catdog.models.classifier import ImageClassifier, class_names_of, inference_model
from catdog.report.evaluation import wilson_interval
from catdog.runs.config import RunConfig
from catdog.runs.job import run_training
from catdog.training.fit import train

from .helpers import cli_in_process, copy_run, tiny

CLASSES = ["birds", "cats", "dogs"]


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    """A small CNN trained one epoch on three generated classes, and its data folder."""
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("three"), images_per_class=8, image_size=(24, 24), seed=2
    )
    for split in ("train", "validation"):
        shutil.copytree(root / split / "cats", root / split / "birds")
        for image in (root / split / "birds").iterdir():  # birds: the cats, mirrored
            Image.open(image).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(image)
    splits = catdog.from_directory(root, image_size=(24, 24), batch_size=8)
    model = catdog.build_baseline_model(input_shape=(24, 24, 3), num_classes=3, filters=(4,))
    train(model, splits, 1, verbose=0)  # attaches splits.class_names to the model
    return model, root


def _images(root: Path, tmp_path: Path) -> list[Path]:
    """A large JPEG and a small PNG, neither of them the model's input size."""
    source = next((root / "validation" / "dogs").glob("*.jpg"))
    jpeg, png = tmp_path / "big.jpg", tmp_path / "small.png"
    Image.open(source).resize((200, 150)).save(jpeg, quality=90)  # decoded at 1/4 scale
    Image.open(source).resize((17, 30)).save(png)
    return [jpeg, png]


def test_factories_and_train_give_models_their_class_names(three_class_model):
    model, _ = three_class_model
    assert isinstance(model, ImageClassifier) and class_names_of(model) == CLASSES
    named = catdog.build_transfer_model(input_shape=(32, 32, 3), weights=None, class_names=CLASSES)
    assert named.output_shape == (None, 3) and named.class_names == CLASSES
    with pytest.raises(InvalidArgumentError, match="num_classes=2 but 3 class_names"):
        catdog.build_cnn_model(num_classes=2, class_names=CLASSES)
    with pytest.raises(InvalidArgumentError, match="distinct"):
        catdog.build_baseline_model(class_names=["a", "a"])
    splits = catdog.from_directory(three_class_model[1], image_size=(24, 24), batch_size=8)
    other = catdog.build_baseline_model(input_shape=(24, 24, 3), class_names=["x", "y", "z"])
    with pytest.raises(InvalidArgumentError, match="built for the classes"):
        train(other, splits, 1, verbose=0)
    two = catdog.build_baseline_model(input_shape=(24, 24, 3))
    with pytest.raises(InvalidArgumentError, match="2 outputs but the data has 3 classes"):
        train(two, splits, 1, verbose=0)
    # the four tutorial models keep their exact parameter counts
    assert catdog.build_baseline_model().count_params() == 2_962_594
    assert catdog.build_augmented_model().count_params() == 6_391_426


ALONE = textwrap.dedent(
    """
    import sys
    from catdog.cli import main
    import catdog
    model_path, images = sys.argv[1], sys.argv[2:]
    main(["predict", model_path, *images])
    model = catdog.load_model(model_path)
    print("api", [p.class_name for p in catdog.predict(model, images)], model.class_names)
    """
)


def test_a_keras_file_alone_predicts_named_classes_in_a_new_process(three_class_model, tmp_path):
    model, root = three_class_model
    alone = tmp_path / "empty"
    alone.mkdir()
    save_model(model, tmp_path / "model.keras")
    shutil.copy(tmp_path / "model.keras", alone / "copied.keras")  # no sidecar file at all
    images = _images(root, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", ALONE, str(alone / "copied.keras"), *map(str, images)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cli_lines = [line.split("\t") for line in done.stdout.splitlines() if "\t" in line]
    assert [line[0] for line in cli_lines] == [str(p) for p in images]
    assert all(line[1] in CLASSES for line in cli_lines)
    api = [line for line in done.stdout.splitlines() if line.startswith("api")][0]
    assert str(CLASSES) in api and "class_" not in api
    assert [line[1] for line in cli_lines] == [p.class_name for p in catdog.predict(model, images)]


SERVE = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf  # no catdog: a TF Serving user's view
    served = tf.saved_model.load(sys.argv[1])
    data = tf.constant([open(p, "rb").read() for p in sys.argv[2:]])
    out = served.signatures["serving_default"](image_bytes=data)
    print(json.dumps({
        "probabilities": out["probabilities"].numpy().tolist(),
        "class_name": [n.decode() for n in out["class_name"].numpy()],
    }))
    """
)


def test_saved_model_serves_encoded_images_like_catdog_predict(three_class_model, tmp_path):
    model, root = three_class_model
    images = _images(root, tmp_path)
    path = export(model, tmp_path / "served", format="tf_saved_model")
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(path), *map(str, images)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    expected = catdog.predict(model, images)
    np.testing.assert_allclose(
        served["probabilities"],
        [[p.probabilities[c] for c in CLASSES] for p in expected],
        atol=1e-4,
    )
    assert served["class_name"] == [p.class_name for p in expected]
    # the pixels endpoint is kept too
    loaded = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    pixels = catdog.data.images.load_images(images, (24, 24))
    np.testing.assert_allclose(loaded(pixels).numpy(), model.predict(pixels, verbose=0), atol=1e-4)


def test_litert_file_names_its_classes(three_class_model, tmp_path, capsys):
    from catdog.cli import main

    model, root = three_class_model
    images = _images(root, tmp_path)
    path = export(model, tmp_path / "m.tflite", format="litert")
    assert labels_path(path).read_text().split() == CLASSES
    lite = LiteRTModel(path)
    assert lite.class_names == CLASSES and lite.input_shape == (None, 24, 24, 3)
    expected = catdog.predict(model, images)
    got = catdog.predict(lite, images)
    assert [p.class_name for p in got] == [p.class_name for p in expected]
    for a, b in zip(got, expected, strict=True):
        assert a.probability == pytest.approx(b.probability, abs=1e-4)
    (tmp_path / "class_names.json").write_text('["not", "these", "names"]')  # another run's
    assert main(["predict", str(path), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1] for line in lines] == [p.class_name for p in expected]
    small = export(model, tmp_path / "m16.tflite", format="tflite", quantize="float16")
    assert small.stat().st_size < path.stat().st_size
    assert LiteRTModel(small).class_names == CLASSES
    with pytest.raises(InvalidArgumentError, match="quantize applies"):
        export(model, tmp_path / "x.keras", quantize="float16")


def test_logit_models_export_probabilities_and_augmentation_is_left_out(tmp_path):
    model = catdog.build_preprocessed_model(
        input_shape=(24, 24, 3), filters=(4,), classifier_activation=None, class_names=["a", "b"]
    )
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(pixels, verbose=0)))
    lite = LiteRTModel(export(model, tmp_path / "logits.tflite", format="litert"))
    np.testing.assert_allclose(lite(pixels), expected, atol=1e-4)
    np.testing.assert_allclose(catdog.predict(model, pixels)[0].probability, expected[0].max())


def test_inference_model_drops_augmentation_by_name_and_keeps_random_crop():
    model = catdog.build_augmented_model(input_shape=(32, 32, 3), zoom=0.1, class_names=["a", "b"])
    assert model.augmentation == ["random_flip", "random_rotation", "random_zoom"]
    lean = inference_model(model)
    assert isinstance(lean, ImageClassifier) and lean.class_names == ["a", "b"]
    assert [layer.name for layer in lean.layers][:1] == ["conv_1"]
    plain = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.RandomCrop(24, 24),  # crops at inference too: must stay
            keras.layers.RandAugment(value_range=(0, 255)),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    kept = [type(layer).__name__ for layer in inference_model(plain).layers]
    assert kept == ["RandomCrop", "Flatten", "Dense"]
    by_hand = ImageClassifier([keras.Input((32, 32, 3)), *plain.layers], class_names=["x", "y"])
    assert by_hand.augmentation == [plain.layers[1].name]
    assert [type(x).__name__ for x in inference_model(by_hand).layers][:2] == [
        "RandomCrop",
        "Flatten",
    ]


def test_wilson_interval_for_known_counts():
    low, high = wilson_interval(199, 200)
    assert (round(low, 4), round(high, 4)) == (0.9722, 0.9991)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)


def test_runs_are_seeded_recorded_and_carded(synthetic_root, tmp_path, capsys):
    from catdog.cli import main

    def config(out):
        return RunConfig(
            out=out,
            model="augmented",  # random flips and rotations: seeded too
            data=str(synthetic_root),
            epochs=2,
            image_size=16,
            batch_size=16,
            verbose=0,
            model_kwargs={"filters": [4], "dense_units": 8},
        )

    first = run_training(config(tmp_path / "a"))
    second = run_training(config(tmp_path / "b"))
    assert first["history"] == second["history"]  # same seed, same CPU: same numbers
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    assert set(record["versions"]) == {"catdog", "keras", "tensorflow", "numpy", "python"}
    test_split = record["splits"]["test"]
    assert test_split["count"] == 8 and len(test_split["sha256"]) == 64
    assert test_split["per_class"] == {"cats": 4, "dogs": 4}
    assert record["class_names"] == ["cats", "dogs"] and record["parameters"] > 0
    card = (tmp_path / "a" / "README.md").read_text()
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    low, high = report["accuracy_ci95"]
    assert f"{report['accuracy']:.2%}" in card and f"{low:.1%} to {high:.1%}" in card
    assert record["versions"]["tensorflow"] in card and "Intended use" in card
    assert "![Training history](history.png)" in card
    (tmp_path / "a" / "README.md").unlink()
    assert main(["card", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "README.md").read_text() == card
    assert load_model(tmp_path / "a" / "model.keras").class_names == ["cats", "dogs"]
    capsys.readouterr()


def test_onnx_export_matches_keras(three_class_model, tmp_path, monkeypatch):
    import onnxruntime  # in the dev extra

    model, root = three_class_model
    path = export(model, tmp_path / "m.onnx", format="onnx")
    assert labels_path(path).read_text().split() == CLASSES
    session = onnxruntime.InferenceSession(str(path))
    pixels = catdog.data.images.load_images(_images(root, tmp_path), (24, 24))
    got = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    np.testing.assert_allclose(got, model.predict(pixels, verbose=0), atol=1e-4)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if the extra were not installed
    with pytest.raises(catdog.MissingExtraError, match="onnx"):
        export(model, tmp_path / "again.onnx", format="onnx")


def test_custom_factories_and_mismatched_classes(synthetic_root, tmp_path):
    from catdog.models.registry import _REGISTRY, register_model

    @register_model("tiny_plain")
    def build_tiny(input_shape=(16, 16, 3), num_classes=2):  # a plain Keras model, no names
        return keras.Sequential(
            [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
        )

    try:
        result = run_training(
            RunConfig(
                out=tmp_path / "run", model="tiny_plain", data=str(synthetic_root), epochs=1,
                image_size=16, verbose=0,
            )
        )  # fmt: skip
        assert result["report"].count == 8
    finally:
        _REGISTRY.pop("tiny_plain")
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), class_names=["dogs", "cats"])
    splits = catdog.from_directory(synthetic_root, image_size=(16, 16))
    with pytest.raises(InvalidArgumentError, match="model's classes are"):
        catdog.evaluate(model, splits)


def _hand_made_run(folder: Path, **config) -> Path:
    """A run folder holding only what ``catdog card`` reads: ``config.json`` (with ``config``
    on top of the fields a run records) and a two-image ``report.json``."""
    folder.mkdir(exist_ok=True)
    record = {"data": "/data/pets", "seed": 1, "model": "baseline", "image_size": 16,
              "class_names": ["cats", "dogs"], **config}  # fmt: skip
    metrics = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    report = {"loss": 0.1, "accuracy": 1.0, "baseline": 0.5, "class_names": ["cats", "dogs"],
              "count": 2, "per_class": {"cats": metrics, "dogs": metrics},
              "confusion": [[1, 0], [0, 1]], "misclassified": []}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(record))
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_card_of_a_config_without_image_size_is_a_one_line_error(tmp_path, capsys):
    from .helpers import cli_in_process

    run = _hand_made_run(tmp_path / "run")
    assert cli_in_process(capsys, "card", run)[0] == 0
    assert "input 16x16" in (run / "README.md").read_text()
    for edited in ({"image_size": None}, {"image_size": "16"}, {"image_size": 0}):
        record = json.loads((run / "config.json").read_text())
        record.update(edited)
        record = {k: v for k, v in record.items() if v is not None}  # None: the field deleted
        (run / "config.json").write_text(json.dumps(record))
        status, _, err = cli_in_process(capsys, "card", run)
        errors = [line for line in err.splitlines() if line.startswith("catdog: error:")]
        assert status == 2 and len(errors) == 1 and "Traceback" not in err, err
        assert "config.json" in errors[0] and "field 'image_size'" in errors[0], errors


def test_class_names_are_escaped_in_the_model_card(finished_run, tmp_path):
    from catdog.runs.card import model_card

    run = copy_run(finished_run, tmp_path / "run")
    evil = {"cats": "<img src=x onerror=alert(1)>", "dogs": "a|b\nc"}
    for name in ("config.json", "report.json"):
        text = (run.out / name).read_text()
        for old, new in evil.items():
            text = text.replace(f'"{old}"', json.dumps(new))
        (run.out / name).write_text(text)
    card = model_card(run.out)
    assert "<img" not in card and "&lt;img src=x onerror=alert(1)&gt;" in card
    assert r"a\|b c" in card
    for table in card.split("\n\n"):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        cells = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
        assert len(cells) <= 1, table  # every row has as many cells as the header


def test_each_export_has_its_own_labels_file_and_never_replaces_a_users(tmp_path):
    from catdog.deploy.labels import exported_class_names, labels_path
    from catdog.deploy.litert import LiteRTModel

    pets, birds = tiny(["cats", "dogs"]), tiny(["owls", "crows", "gulls"])
    export(pets, tmp_path / "x.tflite", format="litert")
    export(birds, tmp_path / "x.onnx", format="onnx")  # same stem, another model
    assert LiteRTModel(tmp_path / "x.tflite").class_names == ["cats", "dogs"]
    assert (tmp_path / "x.tflite.labels.txt").read_text() == "cats\ndogs\n"
    assert labels_path(tmp_path / "x.onnx").read_text().split() == ["owls", "crows", "gulls"]
    assert not (tmp_path / "x.labels.txt").exists()
    (tmp_path / "x.onnx.labels.txt").unlink()  # the names are inside the .onnx file too
    assert exported_class_names(tmp_path / "x.onnx") == ["owls", "crows", "gulls"]
    import onnxruntime

    meta = onnxruntime.InferenceSession(str(tmp_path / "x.onnx")).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["class_names"]) == ["owls", "crows", "gulls"]

    # a user's own labels file, under either name, is never written over without overwrite
    (tmp_path / "y.labels.txt").write_text("mine\n")
    (tmp_path / "y.tflite.labels.txt").write_text("also mine\n")
    with pytest.raises(OutputError, match=r"y\.tflite\.labels\.txt' already exists"):
        export(pets, tmp_path / "y.tflite", format="litert")
    assert not (tmp_path / "y.tflite").exists()
    assert (tmp_path / "y.tflite.labels.txt").read_text() == "also mine\n"
    export(pets, tmp_path / "y.tflite", format="litert", overwrite=True)
    assert (tmp_path / "y.tflite.labels.txt").read_text() == "cats\ndogs\n"
    assert (tmp_path / "y.labels.txt").read_text() == "mine\n"  # not this export's file

    # files exported by older versions (NAME.labels.txt) keep their names; wrong counts fail
    shutil.copy(tmp_path / "x.tflite", tmp_path / "old.tflite")
    (tmp_path / "old.labels.txt").write_text("cats\ndogs\n")
    assert LiteRTModel(tmp_path / "old.tflite").class_names == ["cats", "dogs"]
    (tmp_path / "old.labels.txt").write_text("owls\ncrows\ngulls\n")
    with pytest.raises(InvalidArgumentError, match="names 3 classes but .* predicts 2"):
        LiteRTModel(tmp_path / "old.tflite")


def test_one_rule_names_the_classes_of_predictions_and_exports(tmp_path, capsys, caplog):
    import tensorflow as tf

    from catdog.deploy.export import save_model
    from catdog.deploy.labels import resolve_class_names
    from catdog.deploy.litert import LiteRTModel

    model = tiny()  # names no classes, as a model from an older catdog
    run = tmp_path / "run"
    save_model(model, run / "model.keras")
    (run / "class_names.json").write_text('["cats", "dogs"]')
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 20), (200, 30, 30)).save(image)

    status, out, _ = cli_in_process(capsys, "predict", run / "model.keras", image)
    assert status == 0 and out.split("\t")[1] in ("cats", "dogs")
    tflite = tmp_path / "m.tflite"
    assert cli_in_process(capsys, "export", run / "model.keras", "--out", tflite)[0] == 0
    assert LiteRTModel(tflite).class_names == ["cats", "dogs"]
    served = tmp_path / "served"
    argv = ("export", run / "model.keras", "--format", "saved_model", "--out", served)
    assert cli_in_process(capsys, *argv)[0] == 0
    signature = tf.saved_model.load(str(served)).signatures["serving_default"]
    names = signature(image_bytes=tf.constant([image.read_bytes()]))["class_name"].numpy()
    assert names[0].decode() in ("cats", "dogs")

    # the library: class_names= for the exports; without names and a run folder, class_i
    lite = LiteRTModel(export(model, tmp_path / "n.tflite", "litert", class_names=["a", "b"]))
    assert lite.class_names == ["a", "b"]
    assert resolve_class_names(model) == ["class_0", "class_1"]
    with pytest.raises(InvalidArgumentError, match="keeps the model's own"):
        export(model, tmp_path / "k.keras", class_names=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="predicts 2 classes but 3"):
        export(model, tmp_path / "o.tflite", "litert", class_names=["a", "b", "c"])
    (run / "class_names.json").write_text('["a", "b", "c"]')  # another model's
    with caplog.at_level(logging.WARNING, logger="catdog"):
        assert resolve_class_names(model, run / "model.keras") == ["class_0", "class_1"]
    assert "not this model's" in caplog.text
