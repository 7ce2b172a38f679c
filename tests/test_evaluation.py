import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import catdog
import catdog.data.images
import catdog.data.pipelines
import catdog.deploy.predict
from catdog.data.pipelines import from_directory
from catdog.deploy.predict import predict
from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.report.evaluation import evaluate

from .helpers import cli_in_process, copy_run, one_line_error


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

    from .helpers import cli_in_process

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


def test_evaluate_maps_folder_classes_to_the_model_by_name(finished_run, tmp_path, capsys):
    source = Path(finished_run.data) / "validation"
    renamed = tmp_path / "renamed"
    shutil.copytree(source / "cats", renamed / "cats")
    shutil.copytree(source / "dogs", renamed / "Dogs")
    model = finished_run.out / "model.keras"
    line = one_line_error(capsys, "evaluate", model, "--data", renamed)
    assert "'Dogs'" in line and "did you mean 'dogs'" in line
    zebras = tmp_path / "zebras"
    shutil.copytree(source / "dogs", zebras / "dogs")
    shutil.copytree(source / "cats", zebras / "zebras")
    assert "'zebras'" in one_line_error(capsys, "evaluate", model, "--data", zebras)

    splits = from_directory(source.parent, image_size=(16, 16), class_names=["dogs", "cats"])
    for path, label in zip(splits.files["train"], splits.labels["train"], strict=True):
        assert label == (0 if "/dogs/" in path else 1)  # labels follow the given names


def assert_same_report(got, want, rel: float = 1e-5, where: str = "report") -> None:
    """Two report.json dicts hold the same fields and counts, their numbers equal within
    ``rel``: floats from two processes, CPUs or engines differ in the last digits."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            assert_same_report(got[key], want[key], rel, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same_report(a, b, rel, f"{where}[{i}]")
    elif isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, rel=rel, abs=1e-7), where
    else:
        assert got == want, where


def test_evaluate_uses_the_run_split(finished_run, tmp_path, capsys, monkeypatch, caplog):
    model = finished_run.out / "model.keras"
    line = one_line_error(capsys, "evaluate", model, "--seed", 99)
    assert "--seed 1337" in line and "training images" in line
    monkeypatch.chdir(tmp_path)  # the run's data is found from anywhere
    import catdog.data.pipelines as pipelines

    caches, real = [], pipelines.from_directory

    def recording(*args, **kwargs):
        caches.append(kwargs.get("cache"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipelines, "from_directory", recording)
    status, stdout, stderr = cli_in_process(capsys, "evaluate", model, "--out", "scores")
    assert status == 0, stderr
    # decoded images cached on disk, not in memory, in a temporary folder removed afterwards
    assert caches and all(c not in (None, "memory") and not os.path.exists(c) for c in caches)
    recorded = json.loads((finished_run.out / "report.json").read_text())
    scored = json.loads((tmp_path / "scores" / "report.json").read_text())
    assert recorded.pop("calibration")["method"] == "knn"  # what the run's fit changed
    assert scored.pop("calibration") is None  # evaluate fits nothing
    assert scored.pop("timings") is None and recorded.pop("timings")["total"] > 0  # a run's
    assert scored["engine"] == recorded["engine"] == "tensorflow"  # the run's engine
    assert_same_report(scored, recorded)  # another process or CPU: the last digits may differ

    run = copy_run(finished_run, tmp_path / "changed")  # its files differ from the record
    config = json.loads((run.out / "config.json").read_text())
    config["splits"]["test"]["sha256"] = "0" * 64
    (run.out / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="catdog"):
        status, _, stderr = cli_in_process(capsys, "evaluate", run.out / "model.keras")
    assert status == 0, stderr
    assert "changed since the model was trained" in caplog.text

    old = copy_run(finished_run, tmp_path / "older")  # a record without per-class counts
    config = json.loads((old.out / "config.json").read_text())
    for split in config["splits"].values():
        split.pop("per_class")
    (old.out / "config.json").write_text(json.dumps(config))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        status, _, stderr = cli_in_process(capsys, "evaluate", old.out / "model.keras")
    assert status == 0 and "changed since" not in caplog.text, stderr


def test_reports_record_their_engine_and_name_files_relative_to_the_data(
    finished_run, tmp_path, capsys
):
    from catdog.report.evaluation import Report

    recorded = json.loads((finished_run.out / "report.json").read_text())
    assert recorded["engine"] == "tensorflow"  # what the run scored with
    assert recorded["data"] == os.path.abspath(finished_run.data)
    for wrong in recorded["misclassified"]:  # relative to the data folder, which is recorded
        assert not os.path.isabs(wrong["path"])
        assert os.path.isfile(os.path.join(recorded["data"], wrong["path"]))
    report = Report.from_dict(recorded)
    assert all(os.path.isabs(report.path_of(m)) for m in report.misclassified)

    model = finished_run.out / "model.keras"  # another engine, asked for: recorded, close
    status, _, stderr = cli_in_process(
        capsys, "evaluate", model, "--engine", "litert", "--out", tmp_path / "lite"
    )
    assert status == 0, stderr
    lite = json.loads((tmp_path / "lite" / "report.json").read_text())
    assert lite["engine"] == "litert" and lite["data"] == recorded["data"]
    assert lite["loss"] == pytest.approx(recorded["loss"], rel=1e-3)
    assert all(not os.path.isabs(m["path"]) for m in lite["misclassified"])

    old = copy_run(finished_run, tmp_path / "old")  # a report from before engines were kept
    for name in ("engine", "data"):
        recorded.pop(name)
    (old.out / "report.json").write_text(json.dumps(recorded))
    assert Report.from_dict(recorded).engine is None
    status, _, stderr = cli_in_process(
        capsys, "evaluate", old.out / "model.keras", "--out", tmp_path / "again"
    )
    assert status == 0, stderr
    assert json.loads((tmp_path / "again" / "report.json").read_text())["engine"] == "tensorflow"


def _run_with_seed(finished_run, target: Path, data: Path, seed: int) -> Path:
    """A copy of the finished run, recorded as trained on ``data`` with ``seed``."""
    from catdog.runs.record import split_fingerprint

    run = copy_run(finished_run, target)
    config = json.loads((run.out / "config.json").read_text())
    splits = from_directory(data, image_size=(16, 16), seed=seed)
    config.update(data=str(data), seed=seed, splits=split_fingerprint(splits))
    (run.out / "config.json").write_text(json.dumps(config))
    return run.out / "model.keras"


def test_evaluate_recognises_the_runs_data_after_a_move(
    finished_run, synthetic_root, tmp_path, capsys, monkeypatch
):
    flat = tmp_path / "flat"  # one folder per class, split three ways by the seed
    for name in ("cats", "dogs"):
        shutil.copytree(Path(synthetic_root) / "train" / name, flat / name)
    model = _run_with_seed(finished_run, tmp_path / "run", flat, seed=7)
    moved = tmp_path / "moved"
    flat.rename(moved)

    seeds = []
    real = catdog.data.pipelines.from_directory
    monkeypatch.setattr(
        catdog.data.pipelines,
        "from_directory",
        lambda *a, **k: seeds.append(k["seed"]) or real(*a, **k),
    )
    status, _, stderr = cli_in_process(capsys, "evaluate", model, "--data", moved)
    assert status == 0, stderr
    assert seeds[-1] == 7, "the moved data is the run's: its split is the run's"
    trained_on = set(real(moved, image_size=(16, 16), seed=7).files["train"])
    default_test = set(real(moved, image_size=(16, 16), seed=1337).files["test"])
    assert trained_on & default_test, "the default seed's test split holds training images"

    line = one_line_error(capsys, "evaluate", model, "--data", moved, "--seed", 1337)
    assert "--seed 7" in line and "training images" in line
    assert cli_in_process(capsys, "evaluate", model, "--data", moved, "--seed", 7)[0] == 0

    other = tmp_path / "other"  # other files: not the run's data, the usual default seed
    shutil.copytree(moved, other)
    next((other / "cats").iterdir()).unlink()
    seeds.clear()
    assert cli_in_process(capsys, "evaluate", model, "--data", other)[0] == 0
    assert seeds[-1] == 1337
    assert cli_in_process(capsys, "evaluate", model, "--data", other, "--seed", 3)[0] == 0


def test_evaluate_never_writes_over_the_runs_own_report(finished_run, tmp_path, capsys):
    """`catdog evaluate --out` is checked before any work and is never the run's folder, whose
    report.json gives the run's engine and its finished summary."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run.out, run)
    before = (run / "report.json").read_bytes()
    line = one_line_error(capsys, "evaluate", run / "model.keras", "--out", run)
    assert "run folder" in line and (run / "report.json").read_bytes() == before
    (tmp_path / "a_file").write_text("")
    line = one_line_error(capsys, "evaluate", run / "model.keras", "--out", tmp_path / "a_file")
    assert "--out" in line
