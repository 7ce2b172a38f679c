"""Streaming prediction on many files (``catdog predict``, ``catdog.predict``): an existing
output is kept unless ``--overwrite``, an unreadable image gets a row that says why while the
run goes on, and a stopped run leaves no temporary folder behind and says what is true."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import catdog
import catdog.data.images
import catdog.deploy.predict
from catdog.data.synthetic import make_synthetic_dataset
from catdog.deploy.export import export
from catdog.deploy.prediction_files import write_predictions
from catdog.errors import OutputError

from .helpers import cli_in_process

NAMES = "cats,dogs"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small untrained two-class model (16x16) saved as a .keras file."""
    model = catdog.build_baseline_model(
        input_shape=(16, 16, 3), filters=(4,), dense_units=8, class_names=["cats", "dogs"]
    )
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[list[Path], Path]:
    """72 JPEGs, sorted, and the 41st of them, truncated (in the second batch of 32)."""
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("photos"), images_per_class=24, image_size=(16, 16), seed=2
    )
    paths = sorted(root.rglob("*.jpg"))
    assert len(paths) == 72
    broken = paths[40]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return paths, broken


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- --overwrite
def test_predict_keeps_an_existing_output_unless_overwrite(model_file, photos, tmp_path, capsys):
    good = [p for p in photos[0] if p != photos[1]][:3]
    out = tmp_path / "p.csv"
    out.write_text("mine\n")
    (tmp_path / "bad.keras").write_text("not a model")
    status, _, stderr = cli_in_process(
        capsys, "predict", tmp_path / "bad.keras", good[0], "--output", out
    )
    assert status == 2 and "Could not load" not in stderr  # refused before any work
    line = stderr.strip().splitlines()[-1]
    assert line == (
        f"catdog: error: {str(out)!r} already exists. Choose a new path, or pass "
        "overwrite=True (catdog predict --overwrite) to replace it."
    )
    assert out.read_text() == "mine\n"
    status, _, stderr = cli_in_process(
        capsys, "predict", model_file, *good, "--output", out, "--overwrite"
    )
    assert status == 0, stderr
    with open(out, newline="") as f:
        assert [row["path"] for row in csv.DictReader(f)] == [str(p) for p in good]

    model = catdog.load_model(model_file)  # the library function: the same rule
    with pytest.raises(OutputError, match=r"already exists.*catdog predict --overwrite"):
        write_predictions(catdog.predict(model, good[:1]), out)
    assert len(out.read_text().splitlines()) == 4
    assert write_predictions(catdog.predict(model, good[:1]), out, overwrite=True) == 1
    assert len(out.read_text().splitlines()) == 2


# ----------------------------------------------------------------------------- unreadable images
def test_an_unreadable_image_gets_a_row_saying_why_and_the_run_goes_on(
    model_file, photos, tmp_path, capsys, caplog
):
    """Exit status 1 when some images were skipped (the others written), 0 when all were
    scored; in CSV, JSON lines and on stdout alike."""
    paths, broken = photos
    folder = paths[0].parents[2]
    with caplog.at_level(logging.INFO, logger="catdog"):
        status, stdout, stderr = cli_in_process(
            capsys, "predict", model_file, folder, "--output", tmp_path / "p.csv"
        )
    assert status == 3 and stdout == "", stderr
    assert f"skipped {broken}: not a readable image" in caplog.text
    assert "1 of 72 image(s) could not be read and were skipped" in caplog.text
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == [str(p) for p in paths]  # every image, in order
    assert list(rows[0]) == [
        "path", "class", "probability", "probability_cats", "probability_dogs", "error",
    ]  # fmt: skip
    bad = rows[40]
    assert bad["error"].startswith("not a readable image") and bad["class"] == ""
    assert bad["probability"] == bad["probability_cats"] == ""
    assert all(row["error"] == "" and row["class"] in ("cats", "dogs") for row in rows[41:])

    status, _, _ = cli_in_process(
        capsys, "predict", model_file, folder, "--output", tmp_path / "p.jsonl"
    )
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert status == 3 and len(lines) == 72
    assert lines[40]["error"].startswith("not a readable image")
    assert lines[40]["class"] is None and lines[41]["error"] is None

    status, stdout, _ = cli_in_process(capsys, "predict", model_file, folder, "--batch-size", 8)
    printed = stdout.splitlines()
    assert status == 3 and len(printed) == 72
    assert printed[40].startswith(f"{broken}\terror: not a readable image")
    assert printed[41].split("\t")[1] in ("cats", "dogs")

    good = [p for p in paths if p != broken]
    assert cli_in_process(capsys, "predict", model_file, *good[:5])[0] == 0  # all scored


@pytest.mark.parametrize("batch_size", [4, 64])  # a tf.data pipeline, and one batch
def test_catdog_predict_skips_an_unreadable_image_with_a_warning(
    photos, batch_size, tmp_path, caplog
):
    paths, broken = photos
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    chosen = [broken, *paths[36:40], broken, *paths[41:44], broken]  # first, inside, last
    with caplog.at_level(logging.WARNING, logger="catdog"):
        predictions = catdog.predict(model, chosen, batch_size=batch_size)
    assert [p.path for p in predictions] == [str(p) for p in chosen]
    for skipped in (predictions[0], predictions[5], predictions[9]):
        assert skipped.error.startswith("not a readable image") and skipped.class_name == ""
    assert f"skipped {broken}: not a readable image" in caplog.text
    scored = [p for i, p in enumerate(predictions) if i not in (0, 5, 9)]
    assert all(p.error is None and p.class_name in ("class_0", "class_1") for p in scored)
    expected = catdog.predict(model, [p for p in chosen if p != broken])
    np.testing.assert_allclose(
        [list(p.probabilities.values()) for p in scored],
        [list(p.probabilities.values()) for p in expected],
        rtol=1e-5,
    )
    # the first row is a skipped one: the CSV header still names every column
    assert write_predictions(predictions, tmp_path / "p.csv") == 10
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "path", "class", "probability", "probability_class_0", "probability_class_1", "error",
    ]  # fmt: skip
    assert rows[0]["error"] and not rows[1]["error"] and rows[1]["probability_class_1"]


# ----------------------------------------------------------------------------- stopped runs
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_predict_leaves_no_temporary_folder_and_says_it_does_not_resume(
    model_file, photos, tmp_path, capsys, monkeypatch, signum, status
):
    import catdog.deploy.prediction_files as files

    good = [p for p in photos[0] if p != photos[1]]
    row, seen = files.prediction_row, []

    def stop_at_the_tenth(prediction):
        seen.append(prediction)
        if len(seen) == 10:
            assert _hidden(tmp_path) != [], "the rows go to a hidden temporary folder"
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                raise AssertionError(f"{signum!r} would kill catdog predict, not stop it")
            os.kill(os.getpid(), signum)
            time.sleep(1)  # the handler runs here
        return row(prediction)

    monkeypatch.setattr(files, "prediction_row", stop_at_the_tenth)
    out = tmp_path / "p.csv"
    code, _, stderr = cli_in_process(capsys, "predict", model_file, *good, "--output", out)
    assert code == status and len(seen) == 10
    assert os.listdir(tmp_path) == []  # neither the file nor the hidden folder
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was
    line = stderr.strip().splitlines()[-1]
    assert "resume" not in line.replace("does not resume", "")
    assert f"{out} was not written" in line and "does not resume" in line


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from catdog.io import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_later_run_removes_the_temporary_folder_of_a_killed_one(tmp_path, caplog):
    out = tmp_path / "p.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, out], env=env, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].startswith(".p.csv.") and not out.exists()
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    with caplog.at_level(logging.INFO, logger="catdog"):
        write_predictions(catdog.predict(model, []), out)
    assert _hidden(tmp_path) == [] and out.is_file()
    assert f"removed {tmp_path / left[0]}" in caplog.text

    # never the folder of a live process, of another output, or one catdog did not make
    pid, owner = left[0][len(".p.csv.") :].split("-", 1)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [f".p.csv.{live.pid}-{owner}", f".q.csv.{pid}-{owner}", ".p.csv.backup"]
        for name in kept:
            (tmp_path / name).mkdir()
        write_predictions(catdog.predict(model, []), out, overwrite=True)
        assert _hidden(tmp_path) == sorted(kept)
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_sigterm_stops_a_predict_process_and_removes_its_temporary_folder(
    model_file, photos, tmp_path
):
    """A real process (TensorFlow's threads running) stopped by SIGTERM mid-run."""
    paths = [p for p in photos[0] if p != photos[1]] * 40  # 2,840 images
    out = tmp_path / "p.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "catdog", "predict", str(model_file), *map(str, paths)]
        + ["--output", str(out), "--batch-size", "8", "--engine", "tensorflow"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    deadline = time.monotonic() + 120
    while not _hidden(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert os.listdir(tmp_path) == []
    assert "stopped by SIGTERM" in stderr and "does not resume" in stderr


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


LITE_PREDICT = textwrap.dedent(
    """
    import json, sys
    import catdog.cli
    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.predict import predict

    model, images, out = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
    status = catdog.cli.main(["predict", model, *images, "--output", out])
    found = predict(LiteRTModel(model), images)  # the library call
    heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
    rows = [[p.class_name, *p.probabilities.values()] for p in found]
    print(json.dumps({"status": status, "heavy": heavy, "rows": rows}))
    """
)


def test_a_tflite_file_predicts_without_importing_tensorflow(tmp_path):
    """``catdog predict model.tflite photo.jpg`` (and ``predict(LiteRTModel(...))``) in a new
    process imports neither TensorFlow nor Keras, and agrees with the ``.keras`` model."""
    model = catdog.build_baseline_model(
        input_shape=(32, 32, 3), filters=(4, 8), dense_units=8, class_names=["cats", "dogs"]
    )
    tflite = export(model, tmp_path / "m.tflite", format="litert")
    rng = np.random.default_rng(3)
    images = []
    for i, (side, suffix) in enumerate([(32, ".png"), (50, ".jpg"), (200, ".jpg"), (90, ".gif")]):
        coarse = rng.integers(0, 256, (side // 6 + 2, side // 6 + 2, 3), dtype=np.uint8)
        images.append(tmp_path / f"photo_{i}{suffix}")
        Image.fromarray(coarse).resize((side + 7, side), Image.BICUBIC).save(images[-1])
    out = tmp_path / "p.csv"
    argv = [sys.executable, "-c", LITE_PREDICT, tflite, *images, out]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["status"] == 0 and found["heavy"] == []
    full = catdog.predict(model, images)  # TensorFlow's decoder and engine
    lite = np.array([row[1:] for row in found["rows"]])
    expected = np.array([list(p.probabilities.values()) for p in full])
    np.testing.assert_allclose(lite, expected, atol=1e-4)  # the same pixels, the same model
    with open(out, newline="") as f:
        assert [row["class"] for row in csv.DictReader(f)] == [row[0] for row in found["rows"]]


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
