"""What catdog guarantees when things go wrong: nothing lost, nothing silently wrong.

Each test reproduces one way a user lost data, got a wrong number, or got a traceback, and
checks the guarantee that replaced it (docs/guide/reliability.md lists them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import catdog
import catdog.data.download
import catdog.data.files
import catdog.data.images
import catdog.data.pipelines
import catdog.deploy.labels
import catdog.deploy.predict
import catdog.report.plotting
import catdog.runs.job
import catdog.runs.publish
import catdog.training.callbacks
import catdog.training.fit
from catdog.data.files import split_files
from catdog.data.pipelines import from_directory
from catdog.data.synthetic import make_synthetic_dataset
from catdog.deploy.export import export
from catdog.errors import (
    BusyError,
    DatasetError,
    DatasetNotFoundError,
    InvalidArgumentError,
    OutputError,
    TrainingDivergedError,
)
from catdog.runs.config import RunConfig
from catdog.runs.job import run_training

from .test_cli import cli_in_process


def _one_line_error(capsys, *argv) -> str:
    """Run the CLI in process; assert exit 2 with one error line; return that line."""
    from catdog.cli import main

    assert main([str(a) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("catdog: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def _small_config(root, out, **changes) -> RunConfig:
    config = RunConfig(
        out=Path(out),
        model="baseline",
        data=str(root),
        epochs=1,
        image_size=16,
        batch_size=16,
        verbose=0,
        model_kwargs={"filters": [4], "dense_units": 8},
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory):
    """A finished baseline run folder (16x16, 1 epoch); copy it before changing it."""
    config = _small_config(synthetic_root, tmp_path_factory.mktemp("finished") / "run")
    run_training(config)
    return config


def _copy_run(config: RunConfig, target: Path) -> RunConfig:
    shutil.copytree(config.out, target)
    return replace(config, out=target)


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


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- data loss
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

    run = _copy_run(finished_run, tmp_path / "run")
    before = _snapshot(run.out)
    line = _one_line_error(
        capsys, "export", run.out / "model.keras", "--format", "saved_model", "--out", run.out
    )
    assert "already exists" in line and _snapshot(run.out) == before
    monkeypatch.chdir(folder)
    line = _one_line_error(
        capsys, "export", run.out / "model.keras", "--format", "saved_model", "--out", "."
    )
    assert "already exists" in line and (folder / "notes.txt").read_text() == "precious"


def test_rerunning_a_finished_or_fitted_run_does_not_train_again(
    synthetic_root, tmp_path, monkeypatch
):
    import catdog.data.download
    import catdog.data.files
    import catdog.data.images
    import catdog.data.pipelines
    import catdog.deploy.labels
    import catdog.deploy.predict
    import catdog.report.plotting
    import catdog.runs.publish
    import catdog.training.callbacks
    import catdog.training.fit

    config = _small_config(synthetic_root, tmp_path / "run")
    starts = []
    real_train, real_plot = catdog.training.fit.train, catdog.report.plotting.plot_history
    monkeypatch.setattr(
        catdog.training.fit, "train", lambda *a, **k: starts.append(1) or real_train(*a, **k)
    )

    def killed_while_writing_the_figures(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catdog.report.plotting, "plot_history", killed_while_writing_the_figures)
    with pytest.raises(KeyboardInterrupt):
        run_training(config)  # fitted, then killed before the report and figures
    assert starts == [1] and (config.out / ".resume" / "fitted.json").exists()

    monkeypatch.setattr(catdog.report.plotting, "plot_history", real_plot)
    first = run_training(config)
    assert starts == [1], "a run killed after fitting must finish from what it has"
    assert (config.out / "report.json").exists() and not (config.out / ".resume").exists()
    model_bytes = (config.out / "model.keras").read_bytes()

    again = run_training(replace(config, verbose=1))  # verbosity is not part of the run
    assert starts == [1], "a finished run must not train again"
    assert again["finished_before"] and again["report"].accuracy == first["report"].accuracy
    assert (config.out / "model.keras").read_bytes() == model_bytes


def test_a_failed_run_leaves_the_previous_run_intact(
    finished_run, synthetic_root, tmp_path, monkeypatch
):
    run = _copy_run(finished_run, tmp_path / "run")
    before = _snapshot(run.out)
    three = make_synthetic_dataset(tmp_path / "three", images_per_class=6, image_size=(16, 16))
    shutil.copytree(three / "train" / "cats", three / "train" / "birds")
    shutil.copytree(three / "validation" / "cats", three / "validation" / "birds")

    with pytest.raises(DatasetNotFoundError):  # bad data
        run_training(replace(run, data=str(tmp_path / "missing")))
    with pytest.raises(InvalidArgumentError):  # bad argument
        run_training(replace(run, model="resnet"))
    for bad in ({"learning_rate": 0}, {"fine_tune_learning_rate": 0.0}, {"early_stopping": -1}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):  # before any state
            run_training(replace(run, **bad))
    assert not (run.out / ".resume").exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catdog.training.fit, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while a three-class run trains
        run_training(replace(run, data=str(three)))
    assert _snapshot(run.out) == before  # the old model still has its own class names
    assert json.loads((run.out / "class_names.json").read_text()) == ["cats", "dogs"]

    # the interrupted run is resumable, but only as itself and on the same files
    with pytest.raises(InvalidArgumentError, match=r"unfinished run .*changed: data: "):
        run_training(replace(run, epochs=3))
    shutil.copy(next((three / "train" / "birds").iterdir()), three / "train" / "birds" / "n.jpg")
    with pytest.raises(InvalidArgumentError, match="data changed"):
        run_training(replace(run, data=str(three)))
    assert _snapshot(run.out) == before

    # state left without its config.json (killed while being cleared) is never reused
    (run.out / ".resume" / "config.json").unlink()
    (run.out / ".resume" / "fitted.json").write_text('{"history": {}, "fine_tune_start": null}')
    monkeypatch.undo()
    starts = []
    real_train = catdog.training.fit.train
    monkeypatch.setattr(
        catdog.training.fit, "train", lambda *a, **k: starts.append(1) or real_train(*a, **k)
    )
    result = run_training(replace(run, epochs=2))
    assert starts == [1] and len(result["history"]["loss"]) == 2


def test_resume_state_is_written_atomically_and_a_torn_state_is_survived(
    synthetic_splits, tmp_path, caplog
):
    def model():
        net = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
        return catdog.compile_model(net)

    state = tmp_path / "backup" / "state"
    state.mkdir(parents=True)
    (state / "latest.weights.h5").write_bytes(b"")  # a SIGKILL during Keras' in-place write
    (state / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (tmp_path / "backup" / "history.csv").write_text("epoch,loss\n0,9.0\n1,9.0\n2,9.0\n")
    with caplog.at_level(logging.WARNING, logger="catdog"):
        history = catdog.training.fit.train(
            model(), synthetic_splits, 2, backup_dir=tmp_path / "backup", verbose=0
        )
    assert len(history.history["loss"]) == 2  # started the stage again, from epoch 1
    assert 9.0 not in history.history["loss"]  # the discarded epochs' log went too
    assert "could not be read" in caplog.text

    net = model()
    callback = catdog.training.callbacks.AtomicBackupAndRestore(str(tmp_path / "atomic"))
    callback.save(net, 1)
    good = (tmp_path / "atomic" / "latest.weights.h5").read_bytes()

    def crash_midway(filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half")
        raise KeyboardInterrupt

    real_save = net.save_weights
    net.save_weights = crash_midway
    with pytest.raises(KeyboardInterrupt):
        callback.save(net, 2)
    assert (tmp_path / "atomic" / "latest.weights.h5").read_bytes() == good

    # weights of one epoch beside the record of another: detected, weights left alone
    net.save_weights = real_save
    before = [w.copy() for w in net.get_weights()]
    metadata = tmp_path / "atomic" / "training_metadata.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "sha256": "0" * 64}))
    net.set_weights([w + 1 for w in before])
    fresh = catdog.training.callbacks.AtomicBackupAndRestore(str(tmp_path / "atomic"))
    assert fresh.restore(net) == 0  # the stage starts again from its first epoch
    assert all((a == b + 1).all() for a, b in zip(net.get_weights(), before, strict=True))
    assert not (tmp_path / "atomic").exists()


# ----------------------------------------------------------------------------- wrong results
def test_evaluate_maps_folder_classes_to_the_model_by_name(finished_run, tmp_path, capsys):
    source = Path(finished_run.data) / "validation"
    renamed = tmp_path / "renamed"
    shutil.copytree(source / "cats", renamed / "cats")
    shutil.copytree(source / "dogs", renamed / "Dogs")
    model = finished_run.out / "model.keras"
    line = _one_line_error(capsys, "evaluate", model, "--data", renamed)
    assert "'Dogs'" in line and "did you mean 'dogs'" in line
    zebras = tmp_path / "zebras"
    shutil.copytree(source / "dogs", zebras / "dogs")
    shutil.copytree(source / "cats", zebras / "zebras")
    assert "'zebras'" in _one_line_error(capsys, "evaluate", model, "--data", zebras)

    splits = from_directory(source.parent, image_size=(16, 16), class_names=["dogs", "cats"])
    for path, label in zip(splits.files["train"], splits.labels["train"], strict=True):
        assert label == (0 if "/dogs/" in path else 1)  # labels follow the given names


def test_a_diverged_run_saves_no_model_and_fails(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run"
    config = _small_config(synthetic_root, out, learning_rate=1e38, epochs=2)
    with pytest.raises(TrainingDivergedError, match="Lower the learning rate") as caught:
        run_training(config)
    assert caught.value.history  # the epochs that ran
    assert not out.exists(), "no model (and no run folder) from a diverged run"
    line = _one_line_error(
        capsys,
        *("train", "--model", "baseline", "--data", synthetic_root, "--out", out),
        *("--image-size", 16, "--epochs", 2, "--learning-rate", 1e38),
    )
    assert "diverged" in line and not out.exists()


def test_json_files_stay_valid_with_non_finite_numbers(tmp_path):
    from catdog.io import write_json

    path = write_json(tmp_path / "h.json", {"loss": [0.5, float("nan"), float("inf")]})

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(path.read_text(), parse_constant=strict) == {"loss": [0.5, None, None]}


def test_evaluate_uses_the_run_split(finished_run, tmp_path, capsys, monkeypatch, caplog):
    model = finished_run.out / "model.keras"
    line = _one_line_error(capsys, "evaluate", model, "--seed", 99)
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
    assert scored["engine"] == recorded["engine"] == "tensorflow"  # the run's engine
    assert_same_report(scored, recorded)  # another process or CPU: the last digits may differ

    run = _copy_run(finished_run, tmp_path / "changed")  # its files differ from the record
    config = json.loads((run.out / "config.json").read_text())
    config["splits"]["test"]["sha256"] = "0" * 64
    (run.out / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="catdog"):
        status, _, stderr = cli_in_process(capsys, "evaluate", run.out / "model.keras")
    assert status == 0, stderr
    assert "changed since the model was trained" in caplog.text

    old = _copy_run(finished_run, tmp_path / "older")  # a record without per-class counts
    config = json.loads((old.out / "config.json").read_text())
    for split in config["splits"].values():
        split.pop("per_class")
    (old.out / "config.json").write_text(json.dumps(config))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        status, _, stderr = cli_in_process(capsys, "evaluate", old.out / "model.keras")
    assert status == 0 and "changed since" not in caplog.text, stderr


def test_identical_files_stay_in_one_split(tmp_path, caplog):
    root = tmp_path / "flat"
    source = make_synthetic_dataset(tmp_path / "src", images_per_class=30, image_size=(16, 16))
    for name in ("cats", "dogs"):
        shutil.copytree(source / "train" / name, root / name)
    for i, original in enumerate(sorted((root / "cats").iterdir())[:20]):
        shutil.copy(original, root / "cats" / f"copy_{i}.jpg")  # 20 duplicated images
    crossed = sorted((root / "dogs").iterdir())[0]
    shutil.copy(crossed, root / "cats" / "also_a_dog.jpg")  # one image under two classes
    with caplog.at_level(logging.WARNING, logger="catdog"):
        _, sets = split_files(root, seed=3)
    keys = catdog.data.files.content_keys([str(p) for p in root.rglob("*.jpg")])
    where: dict[str, set[str]] = {}
    for split, by_class in sets.items():
        for paths in by_class.values():
            for path in paths:
                where.setdefault(keys[path], set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())
    assert "also_a_dog.jpg" in caplog.text and crossed.name in caplog.text
    assert sum(len(p) for by_class in sets.values() for p in by_class.values()) == 81


def test_a_new_archive_is_extracted_again(tmp_path):
    def archive(name, per_class):
        data = make_synthetic_dataset(
            tmp_path / name, images_per_class=per_class, image_size=(8, 8)
        )
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for file in sorted(data.rglob("*.jpg")):
                zf.write(file, f"cats_and_dogs_filtered/{file.relative_to(data)}")
        return path.as_uri(), catdog.io.sha256sum(path)

    cache = tmp_path / "cache"
    for name, per_class in (("old", 5), ("new", 10)):
        origin, digest = archive(name, per_class)
        splits = catdog.load_cats_and_dogs(
            cache, origin=origin, file_hash=digest, image_size=(8, 8)
        )
        assert len(splits.files["train"]) == 2 * per_class
    with pytest.raises(InvalidArgumentError, match="needs file_hash"):
        catdog.load_cats_and_dogs(cache, origin=origin)


KILLED_CACHE_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import tensorflow as tf
    from catdog.data.pipelines import _cache_target
    files, cache = sys.argv[2:], sys.argv[1]
    target = _cache_target(cache, "validation", files, (16, 16))
    ds = tf.data.Dataset.range(10**6).map(lambda i: tf.zeros((16, 16, 3), tf.uint8))
    iterator = iter(ds.cache(target))
    for _ in range(1000):
        next(iterator)
    os.kill(os.getpid(), signal.SIGKILL)  # while the cache is half written
    """
)


def test_file_cache_follows_changed_images_and_survives_a_killed_writer(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(10):  # BMP: every image of one size has the same number of bytes
            Image.fromarray(rng.integers(0, 200, (16, 16, 3), np.uint8)).save(
                root / name / f"{i}.bmp"
            )
    cache = tmp_path / "cache"

    def validation_images():
        splits = from_directory(root, image_size=(16, 16), cache=cache)
        images = np.concatenate([x.numpy() for x, _ in splits.validation])
        return splits.files["validation"], images

    files, before = validation_images()
    size = os.path.getsize(files[0])
    Image.new("RGB", (16, 16), "white").save(files[0])  # same size, new pixels, new mtime
    os.utime(files[0], ns=(os.stat(files[0]).st_atime_ns, os.stat(files[0]).st_mtime_ns + 10**9))
    assert os.path.getsize(files[0]) == size
    _, after = validation_images()
    assert after[0].min() == 255 and before[0].min() < 255  # the new pixels, not the cached
    np.testing.assert_array_equal(after[1:], before[1:])

    # a real process killed while filling the cache leaves TensorFlow's lockfile behind
    Image.new("RGB", (16, 16), "black").save(files[1])
    os.utime(files[1], ns=(os.stat(files[1]).st_atime_ns, os.stat(files[1]).st_mtime_ns + 10**9))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_CACHE_WRITER, str(cache), *files], capture_output=True
    )
    assert killed.returncode == -9 and list(cache.glob("*.lockfile")), killed.stderr[-2000:]
    _, images = validation_images()
    assert images[1].max() == 0
    assert not list(cache.glob("*.lockfile"))


# ----------------------------------------------------------------------------- clear errors
def test_too_few_images_fail_before_training(tmp_path, monkeypatch):
    source = make_synthetic_dataset(tmp_path / "src", images_per_class=3, image_size=(16, 16))
    starts = []
    monkeypatch.setattr(catdog.training.fit, "train", lambda *a, **k: starts.append(1))
    for per_class, empty in ((1, "validation and test splits are empty"), (3, "test split")):
        root = tmp_path / f"tiny{per_class}"
        for name in ("cats", "dogs"):
            (root / name).mkdir(parents=True)
            for file in sorted((source / "train" / name).iterdir())[:per_class]:
                shutil.copy(file, root / name)
        out = tmp_path / f"run{per_class}"
        with pytest.raises(DatasetError, match=empty) as caught:
            run_training(_small_config(root, out))
        assert "Add images" in str(caught.value)
        assert not out.exists() and starts == []
    monkeypatch.undo()
    splits = from_directory(tmp_path / "tiny1", image_size=(16, 16))
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    with pytest.raises(DatasetError, match="validation"):
        catdog.training.fit.train(model, splits, 1, verbose=0)
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,accuracy,val_accuracy\n0,0.5,NA\n")
    assert np.isnan(catdog.training.callbacks.read_history_csv(csv)["val_accuracy"][0])


def test_fine_tuning_arguments_are_checked_before_training(synthetic_root, tmp_path, monkeypatch):
    starts = []
    monkeypatch.setattr(catdog.training.fit, "train", lambda *a, **k: starts.append(1))
    config = _small_config(
        synthetic_root,
        tmp_path / "run",
        model="transfer",
        image_size=32,
        weights=None,
        fine_tune_epochs=1,
        unfreeze_from=10_000,
        model_kwargs={},
    )
    with pytest.raises(InvalidArgumentError, match=r"in \[0, 1\), a layer index in 0\.\.153"):
        run_training(config)
    with pytest.raises(InvalidArgumentError, match="fine_tune_epochs"):
        run_training(replace(config, fine_tune_epochs=-1, unfreeze_from=100))
    assert starts == [] and not config.out.exists()


def test_images_over_the_pixel_limit_are_skipped_or_refused(tmp_path, caplog, monkeypatch):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    big = root / "train" / "cats" / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    monkeypatch.setattr(catdog.data.images, "MAX_IMAGE_PIXELS", 100 * 100)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert str(big) not in splits.files["train"] and len(splits.files["train"]) == 12
    assert "big.png" in caplog.text and "300x200 = 60,000 pixels" in caplog.text
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    with pytest.raises(InvalidArgumentError, match="too large to read"):
        catdog.predict(model, [big])


def test_non_utf8_file_names_are_skipped_with_a_warning(tmp_path, caplog):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    good = next((root / "train" / "cats").iterdir())
    bad = os.path.join(os.fsencode(root / "train" / "cats"), b"caf\xe9.jpg")
    shutil.copyfile(good, bad)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert len(splits.files["train"]) == 12
    assert "not valid UTF-8" in caplog.text and "caf\\udce9.jpg" in caplog.text


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
        line = _one_line_error(capsys, "export", model, "--format", format_, "--out", out)
        assert message in line, line


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()
    """
)


def test_a_second_run_into_a_busy_folder_is_refused(synthetic_root, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / ".resume" / "lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match="Another catdog train is writing into"):
            run_training(_small_config(synthetic_root, out))
        assert (out / ".resume" / "lock").exists()  # the other run's state is untouched
    finally:
        holder.communicate("")


EXTRACT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from catdog.data.download import extract_once
    print(len(list(extract_once(Path(sys.argv[1]), Path(sys.argv[2]), "top").rglob("*.bin"))))
    """
)


def test_concurrent_extractions_wait_for_each_other(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(50):
            zf.writestr(f"top/{i}.bin", os.urandom(256))
    target = tmp_path / "datasets"
    target.mkdir()
    holder = subprocess.Popen(  # another process extracting right now
        [sys.executable, "-c", HOLD_LOCK, str(target / ".top.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    waiting = subprocess.Popen(
        [sys.executable, "-c", EXTRACT, str(archive), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=3)  # it waits for the lock, and writes nothing meanwhile
    assert not (target / "top").exists()
    holder.communicate("")  # the other process is done
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and out.strip() == "50", err
    assert "Waiting for another catdog process" in err


def test_a_folder_catdog_did_not_extract_is_kept(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/new.txt", "from the archive")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "mine.txt").write_text("the user's")
    catdog.data.download.extract_once(archive, tmp_path, "top")
    assert (tmp_path / "top" / "new.txt").exists()
    assert (tmp_path / "top.previous-1" / "mine.txt").read_text() == "the user's"


def test_zip_bombs_are_refused_before_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/zeros.bin", b"\0" * (8 << 20))  # 8 MiB that compress to ~8 KiB
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_BYTES", 1 << 20)
    with pytest.raises(DatasetError, match="over the limits"):
        catdog.data.download.extract_once(archive, tmp_path, "top")
    assert not (tmp_path / "top").exists()
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_BYTES", 1 << 30)
    monkeypatch.setattr(catdog.data.download, "MAX_EXTRACT_MEMBERS", 0)
    with pytest.raises(DatasetError, match="1 members"):
        catdog.data.download.extract_once(archive, tmp_path, "top")


def test_folder_conventions(tmp_path, caplog):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    hidden = root / "train" / "cats" / ".thumbnails"
    hidden.mkdir()
    shutil.copy(next((root / "train" / "cats").glob("*.jpg")), hidden / "thumb.jpg")
    webp = root / "train" / "dogs" / "extra.webp"
    Image.open(next((root / "train" / "dogs").glob("*.jpg"))).save(webp)
    (root / "unsorted").mkdir()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert str(webp) in splits.files["train"]  # WebP: as in predict
    assert not any(".thumbnails" in p for p in splits.files["train"])
    assert "unsorted/" in caplog.text


# ----------------------------------------------------------------------------- issue 23
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

    old = _copy_run(finished_run, tmp_path / "old")  # a report from before engines were kept
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

    run = _copy_run(finished_run, target)
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

    line = _one_line_error(capsys, "evaluate", model, "--data", moved, "--seed", 1337)
    assert "--seed 7" in line and "training images" in line
    assert cli_in_process(capsys, "evaluate", model, "--data", moved, "--seed", 7)[0] == 0

    other = tmp_path / "other"  # other files: not the run's data, the usual default seed
    shutil.copytree(moved, other)
    next((other / "cats").iterdir()).unlink()
    seeds.clear()
    assert cli_in_process(capsys, "evaluate", model, "--data", other)[0] == 0
    assert seeds[-1] == 1337
    assert cli_in_process(capsys, "evaluate", model, "--data", other, "--seed", 3)[0] == 0


def test_a_folder_given_for_a_file_and_duplicate_class_names_are_one_line_errors(
    finished_run, tmp_path, capsys
):
    model = finished_run.out / "model.keras"
    image = next((Path(finished_run.data) / "validation" / "cats").iterdir())
    served = tmp_path / "served"
    served.mkdir()
    (served / "saved_model.pb").write_bytes(b"")
    line = _one_line_error(capsys, "predict", model, tmp_path)  # a folder without images
    assert "holds no image file" in line and "image files" in line
    line = _one_line_error(capsys, "predict", served, image)
    assert "SavedModel" in line and ".keras" in line and "does not exist" not in line
    line = _one_line_error(capsys, "evaluate", served)
    assert "SavedModel" in line and ".keras" in line
    line = _one_line_error(capsys, "evaluate", model, "--data", image)
    assert "is a file, not a folder" in line
    with pytest.raises(InvalidArgumentError, match="SavedModel export"):
        catdog.load_model(served)

    line = _one_line_error(capsys, "predict", model, image, "--class-names", "a,a")
    assert "--class-names" in line and "'a' more than once" in line
    net = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    tflite = export(net, tmp_path / "m.tflite", format="tflite")
    catdog.deploy.labels.labels_path(tflite).write_text("cats\ncats\n")
    line = _one_line_error(capsys, "predict", tflite, image)
    assert "m.tflite.labels.txt" in line and "'cats' more than once" in line


def test_hand_edited_run_files_are_one_line_errors_naming_the_field(
    finished_run, tmp_path, capsys, caplog
):
    from catdog.report.evaluation import Report

    run = _copy_run(finished_run, tmp_path / "run")
    config_path, report_path = run.out / "config.json", run.out / "report.json"
    good_config, good_report = config_path.read_text(), report_path.read_text()
    model = run.out / "model.keras"
    for field_, value in (("seed", "7"), ("data", 12345), ("model", None)):
        config = json.loads(good_config)
        config[field_] = value
        config_path.write_text(json.dumps(config))
        line = _one_line_error(capsys, "evaluate", model)
        assert "config.json" in line and f"field {field_!r}" in line, line
        line = _one_line_error(capsys, "card", run.out)
        assert "config.json" in line and f"field {field_!r}" in line, line
    config_path.write_text("{not json")
    assert "not valid JSON" in _one_line_error(capsys, "evaluate", model)
    config_path.write_text(good_config)

    report = json.loads(good_report)
    del report["confusion"]
    report_path.write_text(json.dumps(report))
    for argv in (("evaluate", model), ("card", run.out)):
        line = _one_line_error(capsys, *argv)
        assert "report.json" in line and "'confusion'" in line and "missing" in line, line
    with pytest.raises(InvalidArgumentError, match="'per_class'"):
        Report.from_dict({**json.loads(good_report), "per_class": {"cats": {}}})

    # training into the folder: the damaged record is named, and the run replaces it
    report_path.write_text(json.dumps(report))
    with caplog.at_level(logging.WARNING, logger="catdog"):
        result = run_training(run)
    assert "'confusion'" in caplog.text and "Training the run again" in caplog.text
    assert "finished_before" not in result
    assert "confusion" in json.loads(report_path.read_text())


def test_an_output_folder_that_is_a_file_fails_before_any_work(
    synthetic_root, tmp_path, capsys, monkeypatch
):

    a_file = tmp_path / "logs"
    a_file.write_text("")
    loads = []
    monkeypatch.setattr(catdog.runs.job, "load_data", lambda *a, **k: loads.append(1))
    for where in (a_file, a_file / "run1"):
        line = _one_line_error(
            capsys,
            *("train", "--model", "baseline", "--data", synthetic_root),
            *("--out", tmp_path / "run", "--tensorboard", where),
        )
        assert "--tensorboard" in line and "not a folder" in line, line
    assert loads == [] and not (tmp_path / "run").exists()
    line = _one_line_error(capsys, "tune", "--data", tmp_path / "missing", "--tensorboard", a_file)
    assert "--tensorboard" in line and "not a folder" in line, line
    line = _one_line_error(capsys, "tune", "--data", tmp_path / "missing", "--out", a_file)
    assert "--out" in line and "not a folder" in line, line


# ----------------------------------------------------------------------------- user text
def _tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` but the run's own state (``.resume/``)."""
    from catdog.io import sha256sum

    return {
        str(p.relative_to(folder)): sha256sum(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".resume" not in p.relative_to(folder).parts
    }


def _rename_class(root: Path, old: str, new: str) -> None:
    for split in ("train", "validation"):
        (root / split / old).rename(root / split / new)


def test_class_names_with_dollar_signs_are_drawn_as_text(tmp_path):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    _rename_class(root, "cats", "notes_$5_$10")  # matplotlib would parse $5_$ as math
    _rename_class(root, "dogs", "b")
    out = tmp_path / "run"
    run_training(_small_config(root, out))
    for figure in ("samples.png", "history.png", "confusion_matrix.png", "misclassified.png"):
        assert (out / figure).stat().st_size > 0, figure
    assert json.loads((out / "class_names.json").read_text()) == ["b", "notes_$5_$10"]
    assert r"notes\_\$5\_\$10" in (out / "README.md").read_text()  # no math in Markdown
    assert not (out / ".resume").exists()


@pytest.mark.slow  # two training runs (about 15 s)
def test_a_failed_publish_leaves_the_previous_run_whole(finished_run, tmp_path, monkeypatch):
    import catdog.data.download
    import catdog.data.files
    import catdog.data.images
    import catdog.data.pipelines
    import catdog.deploy.labels
    import catdog.deploy.predict
    import catdog.report.plotting
    import catdog.runs.publish
    import catdog.training.callbacks
    import catdog.training.fit

    run = _copy_run(finished_run, tmp_path / "run")
    before = _tree_hashes(run.out)
    again = replace(run, epochs=2)

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(
        catdog.report.plotting, "plot_confusion_matrix", broken
    )  # while the files are written
    with pytest.raises(RuntimeError, match="injected"):
        run_training(again)
    assert _tree_hashes(run.out) == before
    monkeypatch.undo()

    real_move, moves = catdog.runs.publish._move, []

    def fails_on_the_fourth(source, target):
        moves.append(target)
        if len(moves) == 4:
            raise OSError("injected")
        real_move(source, target)

    monkeypatch.setattr(
        catdog.runs.publish, "_move", fails_on_the_fourth
    )  # while they are swapped in
    with pytest.raises(OSError, match="injected"):
        run_training(again)
    assert _tree_hashes(run.out) == before

    moves.clear()  # a kill midway through the swap: nothing is put back ...
    monkeypatch.setattr(catdog.runs.publish, "_restore", lambda *args: None)
    with pytest.raises(OSError, match="injected"):
        run_training(again)
    assert _tree_hashes(run.out) != before
    monkeypatch.undo()
    starts = []
    real_train = catdog.training.fit.train
    monkeypatch.setattr(
        catdog.training.fit, "train", lambda *a, **k: starts.append(1) or real_train(*a, **k)
    )
    run_training(again)  # ... and the rerun publishes the new run whole, without training
    assert starts == [] and not (run.out / ".resume").exists()
    after = _tree_hashes(run.out)
    assert set(after) == set(before) and after["history.json"] != before["history.json"]
    assert json.loads((run.out / "config.json").read_text())["epochs"] == 2
    history = json.loads((run.out / "history.json").read_text())["history"]
    assert len(history["loss"]) == 2


def test_class_names_are_escaped_in_the_model_card(finished_run, tmp_path):
    from catdog.runs.card import model_card

    run = _copy_run(finished_run, tmp_path / "run")
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


def test_class_names_with_control_characters_are_refused(finished_run, tmp_path, capsys):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=3, image_size=(16, 16))
    _rename_class(root, "cats", "ca\nts")
    with pytest.raises(DatasetError, match=r"ca\\nts'.*rename the folder"):
        from_directory(root, image_size=(16, 16))
    _rename_class(root, "ca\nts", "cats")
    with pytest.raises(InvalidArgumentError, match="control character"):
        from_directory(root, image_size=(16, 16), class_names=["cats", "dogs\t"])
    with pytest.raises(InvalidArgumentError, match="control character"):
        catdog.build_baseline_model(input_shape=(16, 16, 3), class_names=["a\u2028b", "c"])
    image = next((root / "train" / "cats").iterdir())
    line = _one_line_error(
        capsys, "predict", finished_run.out / "model.keras", image, "--class-names", "x\ny,z"
    )
    assert "control character" in line


# ----------------------------------------------------------------------------- issue 23: exports
def _tiny(class_names=None, classes=2):
    return catdog.build_baseline_model(
        input_shape=(16, 16, 3), filters=(4,), dense_units=8, class_names=class_names,
        num_classes=None if class_names else classes,
    )  # fmt: skip


def test_each_export_has_its_own_labels_file_and_never_replaces_a_users(tmp_path):
    from catdog.deploy.labels import exported_class_names, labels_path
    from catdog.deploy.litert import LiteRTModel

    pets, birds = _tiny(["cats", "dogs"]), _tiny(["owls", "crows", "gulls"])
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


def test_a_failed_export_changes_neither_the_model_nor_its_labels(tmp_path):
    from catdog.deploy.export import _write_with_labels

    pets = _tiny(["cats", "dogs"])
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
    model = _tiny(["cats", "dogs"])
    folder = export(model, tmp_path / "served", format="saved_model")
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(OutputError, match=r"did not write \(notes\.txt\)"):
        export(model, folder, format="saved_model", overwrite=True)
    assert (folder / "notes.txt").read_text() == "precious" and (folder / "saved_model.pb").exists()
    (folder / "notes.txt").unlink()
    export(model, folder, format="saved_model", overwrite=True)  # only its own files: replaced
    assert (folder / "saved_model.pb").is_file()


def test_one_rule_names_the_classes_of_predictions_and_exports(tmp_path, capsys, caplog):
    import tensorflow as tf

    from catdog.deploy.export import save_model
    from catdog.deploy.labels import resolve_class_names
    from catdog.deploy.litert import LiteRTModel

    model = _tiny()  # names no classes, as a model from an older catdog
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


def test_a_damaged_litert_cache_file_is_converted_again(tmp_path, caplog):
    from catdog.deploy.litert import _first_line, cached_litert_file
    from catdog.deploy.predict import Predictor
    from catdog.io import sha256sum

    model = _tiny(["cats", "dogs"])
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


def test_predict_runs_fixed_size_batches_and_takes_no_images(tmp_path):
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    assert catdog.predict(model, []) == []
    assert catdog.predict(model, np.zeros((0, 16, 16, 3), np.float32)) == []
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(paths[-1])
    predictor = catdog.Predictor(model, engine="tensorflow")  # the caller's, reused by predict
    seen, run = [], predictor._run
    predictor._run = lambda batch: seen.append(len(batch)) or run(batch)
    batched = catdog.predict(predictor, paths, batch_size=4)  # a tf.data pipeline of 3 batches
    assert seen == [4, 4, 2] and [p.path for p in batched] == [str(p) for p in paths]
    whole = catdog.predict(predictor, paths, batch_size=64)
    np.testing.assert_allclose(
        [list(p.probabilities.values()) for p in batched],
        [list(p.probabilities.values()) for p in whole],
        rtol=1e-5,
    )
    seen.clear()
    assert predictor(np.zeros((10, 16, 16, 3), np.uint8), batch_size=3).shape == (10, 2)
    assert seen == [3, 3, 3, 1]
    seen.clear()
    probabilities = catdog.deploy.predict.predict_probabilities(
        predictor, np.zeros((10, 16, 16, 3)), tta="flip", batch_size=4
    )
    assert probabilities.shape == (10, 2) and max(seen) == 4
    # a file that does not decode is skipped with its reason, in whichever batch it is
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    found = catdog.predict(model, [*paths[:9], bad], batch_size=4)
    assert [p.error for p in found[:9]] == [None] * 9
    assert found[-1].error.startswith("not a readable image") and found[-1].class_name == ""
    # a missing file or one over the pixel limit: refused before any image is run
    seen.clear()
    with pytest.raises(catdog.InputFileNotFoundError, match="missing.png"):
        catdog.predict(predictor, [*paths, tmp_path / "missing.png"], batch_size=4)
    assert seen == []


def _animated_gif(path: Path, seed: int, frames: int = 50, side: int = 64) -> np.ndarray:
    """Write a GIF of different random frames; return its first frame's pixels."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = [
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).convert("P")
        for _ in range(frames)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    decoded = tf.io.decode_gif(path.read_bytes()).numpy()
    assert decoded.shape == (frames, side, side, 3)
    return decoded[0]


@pytest.fixture
def decoder_takes_one_gif_frame(monkeypatch):
    """``tf.io.decode_image``, failing when the GIF bytes it is given hold several frames
    (eagerly, in tf.data pipelines and in exported signatures alike)."""
    import tensorflow as tf

    decode = tf.io.decode_image

    def checked(contents, *args, **kwargs):
        frames = tf.cond(
            tf.strings.substr(contents, 0, 3) == b"GIF",
            lambda: tf.shape(tf.io.decode_gif(contents))[0],
            lambda: tf.constant(1),
        )
        check = tf.debugging.assert_less_equal(frames, 1, message="every frame decoded")
        with tf.control_dependencies([check]):
            return decode(contents, *args, **kwargs)

    monkeypatch.setattr(tf.io, "decode_image", checked)


def test_an_animated_gif_is_read_from_its_first_frame_only(
    tmp_path, caplog, decoder_takes_one_gif_frame
):
    import tensorflow as tf

    gif = tmp_path / "animated.gif"
    first = _animated_gif(gif, seed=0)
    data = gif.read_bytes()
    assert tf.io.decode_gif(catdog.data.images.first_gif_frame(data)).shape == (1, 64, 64, 3)
    pixels = catdog.decode_image(tf.constant(data), (64, 64)).numpy()
    assert pixels.shape == (64, 64, 3) and np.array_equal(pixels, first)
    png = tmp_path / "first.png"  # not a GIF: unchanged
    Image.fromarray(first).save(png)
    assert catdog.data.images.first_gif_frame(png.read_bytes()).numpy() == png.read_bytes()
    # predict
    model = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
    expected = catdog.predict(model, first[None].astype(np.float32))[0].probabilities
    assert catdog.predict(model, [gif])[0].probabilities == pytest.approx(expected, rel=1e-5)
    # datasets
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(64, 64))
    gifs = [root / split / "cats" / f"animated_{split}.gif" for split in ("train", "validation")]
    for seed, path in enumerate(gifs, start=1):
        _animated_gif(path, seed=seed, frames=20)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(64, 64), batch_size=4)
    kept = [p for files in splits.files.values() for p in files]
    assert all(str(p) in kept for p in gifs) and "animated" not in caplog.text
    # the SavedModel's bytes signature
    served = tf.saved_model.load(str(export(model, tmp_path / "served", format="tf_saved_model")))
    out = served.signatures["serving_default"](image_bytes=tf.constant([data, png.read_bytes()]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], list(expected.values()), atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy()[1], list(expected.values()), atol=1e-5)


PEAK_MEMORY = textwrap.dedent(
    """
    import resource, sys
    import catdog
    import catdog.cli
    import tensorflow as tf
    from catdog.data.synthetic import make_synthetic_dataset

    folder, image, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = catdog.build_baseline_model(
        input_shape=(32, 32, 3), filters=(4, 8), dense_units=8, class_names=["cats", "dogs"]
    )
    assert len(catdog.predict(model, [image] * count)) == count
    model.save(folder + "/model.keras")  # and catdog predict, streaming to a CSV file
    argv = ["predict", folder + "/model.keras", *[image] * count, "--engine", "tensorflow"]
    assert catdog.cli.main([*argv, "--output", folder + "/p.csv"]) == 0
    assert sum(1 for _ in open(folder + "/p.csv")) == count + 1
    if len(sys.argv) > 4:  # the same file through the serving signature and a dataset
        served = tf.saved_model.load(sys.argv[4])
        data = open(image, "rb").read()
        served.signatures["serving_default"](image_bytes=tf.constant([data]))
        root = make_synthetic_dataset(folder + "/data", images_per_class=6, image_size=(16, 16))
        for i in range(3):
            open(f"{root}/train/cats/image_{i}.gif", "wb").write(data + bytes(i))
        catdog.from_directory(root, image_size=(64, 64))
    print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


def _peak_memory_mb(tmp_path: Path, image: Path, count: int, served: Path | None = None) -> int:
    """Peak resident memory (MB) of a process that predicts ``count`` times ``image``."""
    import tempfile

    folder = tempfile.mkdtemp(prefix=f"{image.stem}_{count}_", dir=tmp_path)
    argv = [sys.executable, "-c", PEAK_MEMORY, str(folder), str(image), str(count)]
    done = subprocess.run(
        [*argv, *([str(served)] if served else [])],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split("peak")[-1])


@pytest.mark.slow
def test_prediction_memory_does_not_grow_with_the_number_of_images(tmp_path):
    image = tmp_path / "small.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(image)
    few, many = _peak_memory_mb(tmp_path, image, 1000), _peak_memory_mb(tmp_path, image, 20_000)
    # one batch of all (before): about 1.2 GB for 1,000 images and 3.5 GB for 5,000; now
    # about 10 MB more for 20,000 (catdog.predict's list of predictions)
    assert many - few < 100, (few, many)


def _gif_of_identical_frames(path: Path, frames: int, side: int) -> Path:
    """A GIF of ``frames`` full ``side`` x ``side`` frames: a few KB each, so written fast."""
    import io

    one = Image.new("P", (side, side), 1)
    one.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buffer = io.BytesIO()
    one.save(buffer, "GIF")
    data = buffer.getvalue()
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # after the color table
    path.write_bytes(data[:start] + data[start:-1] * frames + b"\x3b")
    return path


@pytest.mark.slow
def test_an_animated_gif_costs_the_memory_of_one_frame(tmp_path):
    import tensorflow as tf

    still = _gif_of_identical_frames(tmp_path / "still.gif", 1, 1000)
    animated = _gif_of_identical_frames(tmp_path / "animated.gif", 1000, 1000)
    assert tf.io.decode_gif(catdog.data.images.first_gif_frame(animated.read_bytes())).shape[0] == 1
    model = catdog.build_baseline_model(input_shape=(64, 64, 3), class_names=["cats", "dogs"])
    served = export(model, tmp_path / "served", format="tf_saved_model")
    one = _peak_memory_mb(tmp_path, still, 1, served)
    thousand = _peak_memory_mb(tmp_path, animated, 1, served)
    # every frame decoded (before): 1,000 frames of 1000x1000 took 1 GB more
    assert thousand - one < 250, (one, thousand)


def test_evaluate_never_writes_over_the_runs_own_report(finished_run, tmp_path, capsys):
    """`catdog evaluate --out` is checked before any work and is never the run's folder, whose
    report.json gives the run's engine and its finished summary."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run.out, run)
    before = (run / "report.json").read_bytes()
    line = _one_line_error(capsys, "evaluate", run / "model.keras", "--out", run)
    assert "run folder" in line and (run / "report.json").read_bytes() == before
    (tmp_path / "a_file").write_text("")
    line = _one_line_error(capsys, "evaluate", run / "model.keras", "--out", tmp_path / "a_file")
    assert "--out" in line
