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
    (unread,) = predict(model, [tmp_path / "note.jpg"])  # skipped, saying why
    assert unread.error.startswith("not a readable image") and unread.class_name == ""
    with pytest.raises(InvalidArgumentError, match="not a readable image"):
        catdog.data.images.load_images([tmp_path / "note.jpg"], (32, 32))
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        predict(model, [tmp_path / "missing.png"])
    with pytest.raises(InvalidArgumentError, match="shape"):
        predict(model, np.zeros((2, 16, 16, 3)))
    assert predict(model, np.zeros((32, 32, 3)))[0].class_name in ("class_0", "class_1")


# ----------------------------------------------------------------------------- catdog evaluate
def _model_file(folder: Path) -> Path:
    """A small untrained cats/dogs model (16x16) saved as ``folder/model.keras``."""
    model = catdog.build_baseline_model(
        input_shape=(16, 16, 3), filters=(4,), dense_units=8, class_names=["cats", "dogs"]
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    return folder / "model.keras"


def _record_decoded_splits(monkeypatch, temporary: Path) -> list[set[str]]:
    """Each evaluation's decoded splits, read from the names of its cache files (in
    ``temporary``, the temporary folder) when it scores."""
    import os
    import tempfile

    import catdog.report.evaluation as evaluation

    temporary.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    real, seen = evaluation.evaluate, []

    def recording(*args, **kwargs):
        (cache,) = temporary.glob(f"catdog-evaluate-{os.getpid()}-*")  # this process's
        seen.append({p.name.split("-")[0] for p in cache.glob("*.tfcache.index")})
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", recording)
    return seen


def test_evaluate_decodes_only_the_split_it_scores(synthetic_root, tmp_path, monkeypatch, caplog):
    import logging
    import shutil

    from catdog.data.pipelines import from_directory
    from catdog.runs.evaluate import evaluate_run
    from catdog.runs.record import split_fingerprint

    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    decoded = _record_decoded_splits(monkeypatch, tmp_path / "tmp")
    alone = _model_file(tmp_path / "alone")  # no run folder: the data split with the seed
    report = evaluate_run(alone, str(data), split="validation")
    assert decoded == [{"validation"}] and report.count == 32

    # a run whose training split held a file that does not decode (the run left it out):
    # the run's data is still recognised, its other splits decoded to tell
    (data / "train" / "cats" / "zz_broken.jpg").write_text("not an image")
    model = _model_file(tmp_path / "run")
    splits = from_directory(data, image_size=(16, 16), seed=1337)
    config = {"data": str(data), "seed": 1337, "model": "baseline", "image_size": 16}
    config["splits"] = split_fingerprint(splits)
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    decoded.clear()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        report = evaluate_run(model, engine="tensorflow")
    assert "changed since the model was trained" not in caplog.text
    assert decoded == [{"train", "validation", "test"}] and report.count == 8
    sorted((data / "train" / "dogs").iterdir())[0].unlink()  # now the run's files differ
    decoded.clear()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        evaluate_run(model, engine="tensorflow")
    assert "changed since the model was trained" in caplog.text
    assert decoded == [{"test"}]  # one file fewer than the run's: no decoding can explain it


@pytest.mark.parametrize(("signum", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_evaluate_removes_its_cache_and_says_it_does_not_resume(
    synthetic_root, tmp_path, monkeypatch, capsys, signum, status
):
    import os
    import signal
    import time

    import catdog.report.evaluation as evaluation

    from .test_cli import cli_in_process

    signum = getattr(signal, signum)
    temporary = tmp_path / "tmp"
    decoded = _record_decoded_splits(monkeypatch, temporary)
    recording = evaluation.evaluate

    def stopped(*args, **kwargs):
        recording(*args, **kwargs)
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            raise AssertionError(f"{signum!r} would kill catdog evaluate, not stop it")
        os.kill(os.getpid(), signum)
        time.sleep(1)  # the handler runs here

    monkeypatch.setattr(evaluation, "evaluate", stopped)
    model = _model_file(tmp_path / "alone")
    code, stdout, stderr = cli_in_process(
        capsys, "evaluate", model, "--data", synthetic_root, "--engine", "tensorflow"
    )
    assert code == status and decoded and stdout == ""
    assert list(temporary.glob("catdog-evaluate-*")) == []  # the cache is gone
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was
    line = stderr.strip().splitlines()[-1]
    assert "does not resume" in line and "resume" not in line.replace("does not resume", "")


KILLED_EVALUATION = """
import os, signal
from catdog.io import temporary_folder
with temporary_folder("catdog-evaluate-") as cache:
    (cache / "test-0.tfcache.index").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_later_evaluate_removes_the_cache_of_a_killed_one(
    synthetic_root, tmp_path, monkeypatch, caplog
):
    import logging
    import os
    import signal
    import subprocess
    import sys

    from catdog.runs.evaluate import evaluate_run

    temporary = tmp_path / "tmp"
    _record_decoded_splits(monkeypatch, temporary)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temporary)}
    killed = subprocess.run([sys.executable, "-c", KILLED_EVALUATION], env=env, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    (left,) = (p.name for p in temporary.glob("catdog-evaluate-*"))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process's cache stays
        pid, owner = left[len("catdog-evaluate-") :].split("-", 1)
        alive = temporary / f"catdog-evaluate-{live.pid}-{owner}"
        alive.mkdir()
        with caplog.at_level(logging.INFO, logger="catdog"):
            evaluate_run(_model_file(tmp_path / "m"), str(synthetic_root), engine="tensorflow")
        assert [p.name for p in temporary.glob("catdog-evaluate-*")] == [alive.name]
        assert f"removed {temporary / left}" in caplog.text
    finally:
        live.kill()
        live.wait()
