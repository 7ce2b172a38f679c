import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import catdog
import catdog.deploy.labels
import catdog.runs.job
import catdog.training.fit
from catdog.deploy.export import export
from catdog.errors import InvalidArgumentError
from catdog.runs.config import RunConfig
from catdog.runs.job import run_training

from .helpers import cli_in_process, one_line_error


def run_cli(*args, env=None, timeout=600):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "catdog", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


def assert_clean_error(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("catdog: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]


@pytest.mark.parametrize("command", ["", "train", "evaluate", "predict", "export", "models"])
def test_help(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.returncode == 0 and "usage: catdog" in result.stdout


def test_models_lists_the_registry(capsys):
    status, stdout, stderr = cli_in_process(capsys, "models")
    assert status == 0, stderr
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:]}
    assert len(rows) == 45 and {"baseline", "transfer", "prototypes"} <= set(rows)
    assert "2,962,594" in rows["baseline"] and "2,340,098" in rows["transfer"]
    assert rows["efficientnet_v2_b0"].split()[1:5] == [
        "efficientnet_v2",
        "224",
        "6,001,426",
        "78.7",
    ]
    status, stdout, _ = cli_in_process(capsys, "models", "resnet*v2")
    assert [line.split()[0] for line in stdout.splitlines()[1:]] == [
        "resnet101_v2", "resnet152_v2", "resnet50_v2",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "baseline"
    result = run_cli(
        "train",
        "--data",
        synthetic_root,
        "--model",
        "baseline",
        "--epochs",
        2,
        "--image-size",
        32,
        "--batch-size",
        16,
        "--out",
        out,
    )
    return out, result


def test_train_writes_the_run_folder(trained_run):
    out, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 2/2" in result.stdout  # Keras' progress output
    assert "accuracy" in result.stdout and f"run folder: {out}" in result.stdout
    expected = {
        "model.keras",
        "class_names.json",
        "config.json",
        "history.json",
        "history.png",
        "report.txt",
        "report.json",
        "confusion_matrix.png",
        "misclassified.png",
        "samples.png",
        "reliability.png",  # calibration, on by default
        "risk_coverage.png",
        "README.md",  # the model card
    }
    assert {p.name for p in out.iterdir()} == expected  # nothing else (.resume is removed)
    assert json.loads((out / "class_names.json").read_text()) == ["cats", "dogs"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]["val_accuracy"]) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["count"] == 8 and report["class_names"] == ["cats", "dogs"]
    config = json.loads((out / "config.json").read_text())
    assert config["calibrate"] is True and config["unknown_coverage"] == 0.98
    assert config["calibration"]["method"] == "knn"
    assert report["calibration"]["temperature"] == config["calibration"]["temperature"]
    assert "Confidence and unknown images" in (out / "README.md").read_text()


def test_a_run_accounts_for_its_time(trained_run):
    out, result = trained_run
    timings = json.loads((out / "report.json").read_text())["timings"]
    phases = {"start-up", "imports", "data", "model", "training", "calibration", "evaluation"}
    assert phases | {"figures", "saving", "total"} <= set(timings)
    assert "features" not in timings  # a small CNN decodes as it trains: no feature pass
    assert all(seconds >= 0 for seconds in timings.values())
    assert timings["start-up"] > 0 and timings["training"] > 0
    parts = sum(seconds for name, seconds in timings.items() if name != "total")
    assert parts == pytest.approx(timings["total"], abs=0.01)  # "other" holds the rest
    line = next(x for x in result.stdout.splitlines() if x.startswith("time "))
    assert line.startswith(f"time {timings['total']:.1f} s: ") and "training " in line
    assert f"The run took {timings['total']:.1f} s: " in (out / "README.md").read_text()


def test_evaluate_predict_export(trained_run, synthetic_root, tmp_path, capsys, caplog):
    out, _ = trained_run
    model = out / "model.keras"
    status, stdout, stderr = cli_in_process(
        capsys, "evaluate", model, "--data", synthetic_root, "--out", tmp_path
    )
    assert status == 0, stderr[-2000:]
    assert "accuracy" in stdout and (tmp_path / "report.json").exists()

    images = sorted((Path(synthetic_root) / "validation" / "dogs").glob("*.jpg"))[:2]
    with caplog.at_level(logging.INFO, logger="catdog"):
        status, stdout, stderr = cli_in_process(capsys, "predict", model, *images)
    assert status == 0, stderr[-2000:]
    lines = [line.split("\t") for line in stdout.strip().splitlines()]
    assert [line[0] for line in lines] == [str(p) for p in images]
    assert all(
        line[1] in ("cats", "dogs", "unknown") and 0.5 <= float(line[2]) <= 1 for line in lines
    )
    assert all(line[3].startswith("score ") for line in lines)  # the model's ood score
    timed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time ")]
    assert len(timed) == 1 and " images/s): " in timed[0]
    assert "loading the model" in timed[0] and "decoding and predicting" in timed[0]

    status, _, stderr = cli_in_process(
        capsys, "export", model, "--format", "tflite", "--out", tmp_path / "m.tflite"
    )
    assert status == 0, stderr[-2000:]
    assert (tmp_path / "m.tflite").stat().st_size > 1000


def test_predict_takes_folders_and_writes_csv_or_json_lines(
    trained_run, synthetic_root, tmp_path, capsys
):
    """Folders are searched recursively (sorted; hidden files left out) and mix with files;
    --output writes one row per image with every class's probability, in batches of
    --batch-size; a file that does not decode gets a row saying why."""
    import csv

    model = trained_run[0] / "model.keras"
    folder, results = tmp_path / "photos", tmp_path / "results"
    shutil.copytree(Path(synthetic_root) / "validation", folder)
    (folder / "cats" / ".hidden.jpg").write_bytes(b"not read")
    single = sorted((Path(synthetic_root) / "train" / "cats").glob("*.jpg"))[0]
    expected = sorted(str(p) for p in folder.rglob("*.jpg") if p.name != ".hidden.jpg")
    status, stdout, stderr = cli_in_process(
        capsys, "predict", model, single, folder, "--batch-size", 7, "--output", results / "p.csv"
    )
    assert status == 0 and stdout == "", stderr[-2000:]
    with open(results / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [str(single), *expected] and len(rows) == 41
    columns = ["path", "class", "probability", "ood_score", "unknown"]
    assert list(rows[0]) == [*columns, "probability_cats", "probability_dogs", "error"]
    for row in rows:
        both = float(row["probability_cats"]) + float(row["probability_dogs"])
        assert both == pytest.approx(1, abs=1e-5)
        best = max(float(row["probability_cats"]), float(row["probability_dogs"]))
        assert float(row["probability"]) == best
        assert (row["class"] == "unknown") == (row["unknown"] == "True")
    status, _, _ = cli_in_process(capsys, "predict", model, folder, "--output", results / "p.jsonl")
    lines = [json.loads(line) for line in (results / "p.jsonl").read_text().splitlines()]
    assert [line["path"] for line in lines] == expected and status == 0
    assert lines[0]["probability_dogs"] == pytest.approx(
        float(rows[1]["probability_dogs"]), abs=1e-5
    )
    status, stdout, _ = cli_in_process(capsys, "predict", model, folder)  # stdout: as before
    printed = [line.split("\t") for line in stdout.splitlines()]
    assert [p[0] for p in printed] == expected and printed[0][1] == lines[0]["class"]
    assert float(printed[0][2]) == pytest.approx(lines[0]["probability"], abs=1e-4)
    # a file that does not decode, in the last batch: its row says why, exit status 3
    (folder / "dogs" / "zz_broken.jpg").write_text("not an image")
    status, _, stderr = cli_in_process(
        capsys, "predict", model, folder, "--batch-size", 8, "--output", results / "new.csv"
    )
    assert status == 3, stderr  # some images skipped: the others written
    with open(results / "new.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["path"].endswith("zz_broken.jpg") and rows[-1]["ood_score"] == ""
    assert rows[-1]["error"].startswith("not a readable image") and len(rows) == 41
    assert sorted(p.name for p in results.iterdir()) == ["new.csv", "p.csv", "p.jsonl"]


def test_predict_refuses_a_bad_output_or_an_empty_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "bad.keras").write_text("not a model")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("")
    (tmp_path / "taken.csv").mkdir()
    image = tmp_path / "x.jpg"
    cases = [
        (["--output", tmp_path / "p.txt"], "--output"),  # before the model is read
        (["--output", tmp_path / "taken.csv"], "is a folder"),
        ([tmp_path / "empty"], "holds no image file"),
    ]
    for extra, message in cases:
        status, _, stderr = cli_in_process(capsys, "predict", tmp_path / "bad.keras", image, *extra)
        assert status == 2 and message in stderr and "Could not load" not in stderr, stderr
    with pytest.raises(SystemExit):
        cli_in_process(capsys, "predict", tmp_path / "bad.keras", image, "--batch-size", 0)
    assert "positive integer" in capsys.readouterr().err


def test_predict_progress_bar_goes_to_stderr_on_long_runs(capsys, monkeypatch):
    import sys

    from catdog.cli import PROGRESS_MIN_IMAGES, _with_progress

    items = list(range(100))
    assert list(_with_progress(iter(items), 100, 32, to_file=True)) == items
    assert capsys.readouterr().err == ""  # not a terminal, and few images
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert list(_with_progress(iter(items), 100, 32, to_file=True)) == items
    captured = capsys.readouterr()
    assert "100/100" in captured.err and captured.out == ""
    assert list(_with_progress(iter(items[:32]), 32, 32, to_file=True)) == items[:32]
    assert capsys.readouterr().err == ""  # one batch: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    many = range(PROGRESS_MIN_IMAGES)
    assert sum(1 for _ in _with_progress(iter(many), len(many), 32, to_file=True)) == len(many)
    assert f"{len(many)}/{len(many)}" in capsys.readouterr().err  # a log of a long run


def test_cli_errors(trained_run, tmp_path):
    # one error through a real subprocess: exit status 2, one line, no traceback
    assert_clean_error(
        run_cli("train", "--model", "resnet", "--data", tmp_path, "--out", tmp_path / "r"),
        "Unknown model 'resnet'",
    )
    bad_arg = run_cli("train", "--epochs", "0")
    assert bad_arg.returncode == 2 and "positive integer" in bad_arg.stderr


def test_cli_error_lines_in_process(trained_run, tmp_path, capsys):
    from catdog.cli import main

    out, _ = trained_run
    (tmp_path / "bad.keras").write_text("not a model")
    cases = [
        (
            ["train", "--model", "baseline", "--data", tmp_path / "nope", "--out", tmp_path / "r"],
            "does not exist",
        ),
        (["predict", tmp_path / "bad.keras", "x.jpg"], "Could not load"),
        (["predict", out / "model.keras", tmp_path / "missing.jpg"], "does not exist"),
        (["evaluate", tmp_path / "missing.keras", "--data", tmp_path], "does not exist"),
        (["export", tmp_path / "bad.keras", "--out", tmp_path / "m.tflite"], "Could not load"),
    ]
    for argv, message in cases:
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("catdog: error:") and message in err[0], err
    assert not (tmp_path / "r").exists()  # nothing written for a failed run


@pytest.mark.slow  # a whole demo run (about 17 s); .ci/run also runs it from the wheel
def test_demo_is_the_main_job(tmp_path):
    out = tmp_path / "demo"
    result = run_cli(
        "train", "--demo", "--epochs", 3, "--out", out, env={"KERAS_HOME": str(tmp_path / "keras")}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"] >= report["baseline"] + 0.2
    assert (tmp_path / "keras" / "datasets").is_dir()  # generated data, offline


@pytest.mark.slow  # two training runs (about 25 s)
def test_workflow_resumes_into_fine_tuning(synthetic_root, tmp_path, monkeypatch):
    config = RunConfig(
        out=tmp_path / "run",
        model="transfer",
        data=str(synthetic_root),
        epochs=1,
        fine_tune_epochs=1,
        unfreeze_from=150,
        image_size=32,
        batch_size=16,
        weights=None,
        verbose=0,
    )
    import catdog.training.fine_tune
    import catdog.training.fit

    calls = []  # the first epoch of each training stage run
    real_train, real_fine_tune = catdog.training.fit.train, catdog.training.fine_tune.fine_tune

    def counting_train(*args, **kwargs):
        calls.append(kwargs.get("initial_epoch", 0))
        return real_train(*args, **kwargs)

    def crashing_fine_tune(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies during fine-tuning

    monkeypatch.setattr(catdog.training.fit, "train", counting_train)
    monkeypatch.setattr(catdog.training.fine_tune, "train", counting_train)  # its own import
    monkeypatch.setattr(catdog.training.fine_tune, "fine_tune", crashing_fine_tune)
    with pytest.raises(KeyboardInterrupt):
        run_training(config)
    assert calls == [0] and (config.out / ".resume" / "stage1.json").exists()

    monkeypatch.setattr(catdog.training.fine_tune, "fine_tune", real_fine_tune)
    result = run_training(config)
    assert calls == [0, 1], "the finished first stage must not run again"
    history = json.loads((config.out / "history.json").read_text())
    assert history["fine_tune_start"] == 1 and len(history["history"]["accuracy"]) == 2
    assert not (config.out / ".resume").exists()
    assert result["report"].count == 8


@pytest.mark.slow
def test_fast_mixed_precision_cli_run(synthetic_root, tmp_path):
    out = tmp_path / "fast"
    result = run_cli(
        "train",
        "--data",
        synthetic_root,
        "--model",
        "transfer",
        "--weights",
        "none",
        "--fast",
        "--augment-copies",
        1,
        "--precision",
        "mixed_bfloat16",
        "--jit-compile",
        "false",
        "--fine-tune-epochs",  # the default fine-tuning stage is tested in test_defaults.py
        0,
        "--epochs",
        2,
        "--image-size",
        32,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history["val_accuracy"]) == 2
    config = json.loads((out / "config.json").read_text())
    assert config["cache_features"] is True and config["augment_copies"] == 1
    assert config["precision"] == "mixed_bfloat16" and config["jit_compile"] is False
    from catdog.deploy.export import load_model

    base = load_model(out / "model.keras").get_layer("base").layer
    assert base.get_layer("Conv1").compute_dtype == "bfloat16"
    assert_clean_error(
        run_cli(
            "train",
            "--data",
            synthetic_root,
            "--model",
            "baseline",
            "--fast",
            "--out",
            tmp_path / "x",
        ),
        "need a model with a pretrained base",
    )


@pytest.mark.slow
def test_workflow_passes_speed_options_to_training(synthetic_root, tmp_path, monkeypatch):
    import catdog.training.fine_tune
    import catdog.training.fit

    seen = {}
    real_train = catdog.training.fit.train

    def recording_train(*args, **kwargs):
        seen.update(kwargs)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(catdog.training.fit, "train", recording_train)
    config = RunConfig(
        out=tmp_path / "run",
        model="transfer",
        data=str(synthetic_root),
        epochs=1,
        image_size=32,
        weights=None,
        cache_features=True,
        augment_copies=1,
        precision="mixed_bfloat16",
        jit_compile=False,
        verbose=0,
    )
    result = run_training(config)
    assert seen["cache_features"] is True and seen["augment_copies"] == 1
    assert seen["jit_compile"] is False
    timings = result["report"].timings  # one pass of the base, timed apart from the head
    assert timings["features"] > 0 and timings["training"] > 0 and "start-up" not in timings
    from catdog.deploy.export import load_model

    model = load_model(config.out / "model.keras")
    assert model.get_layer("base").layer.get_layer("Conv1").compute_dtype == "bfloat16"
    assert model.get_layer("predictions").compute_dtype == "float32"


def test_internal_errors_show_a_traceback_user_errors_one_line(monkeypatch, capsys):
    from catdog import cli

    def failing(error):
        def command(args):
            raise error

        return command

    monkeypatch.setattr(cli, "cmd_models", failing(ValueError("a bug inside catdog")))
    with pytest.raises(ValueError, match="a bug inside catdog"):  # not hidden as a user error
        cli.main(["models"])
    monkeypatch.setattr(cli, "cmd_models", failing(OSError("an internal OS error")))
    with pytest.raises(OSError, match="internal"):
        cli.main(["models"])
    denied = PermissionError(13, "Permission denied", "/data/photos/cat.jpg")
    monkeypatch.setattr(cli, "cmd_models", failing(denied))
    assert cli.main(["models"]) == 2  # an OS error on a user's path is the user's to fix
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Permission denied" in err[0] and "cat.jpg" in err[0]


def test_a_folder_given_for_a_file_and_duplicate_class_names_are_one_line_errors(
    finished_run, tmp_path, capsys
):
    model = finished_run.out / "model.keras"
    image = next((Path(finished_run.data) / "validation" / "cats").iterdir())
    served = tmp_path / "served"
    served.mkdir()
    (served / "saved_model.pb").write_bytes(b"")
    line = one_line_error(capsys, "predict", model, tmp_path)  # a folder without images
    assert "holds no image file" in line and "image files" in line
    line = one_line_error(capsys, "predict", served, image)
    assert "SavedModel" in line and ".keras" in line and "does not exist" not in line
    line = one_line_error(capsys, "evaluate", served)
    assert "SavedModel" in line and ".keras" in line
    line = one_line_error(capsys, "evaluate", model, "--data", image)
    assert "is a file, not a folder" in line
    with pytest.raises(InvalidArgumentError, match="SavedModel export"):
        catdog.load_model(served)

    line = one_line_error(capsys, "predict", model, image, "--class-names", "a,a")
    assert "--class-names" in line and "'a' more than once" in line
    net = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    tflite = export(net, tmp_path / "m.tflite", format="tflite")
    catdog.deploy.labels.labels_path(tflite).write_text("cats\ncats\n")
    line = one_line_error(capsys, "predict", tflite, image)
    assert "m.tflite.labels.txt" in line and "'cats' more than once" in line


def test_an_output_folder_that_is_a_file_fails_before_any_work(
    synthetic_root, tmp_path, capsys, monkeypatch
):

    a_file = tmp_path / "logs"
    a_file.write_text("")
    loads = []
    monkeypatch.setattr(catdog.runs.job, "load_data", lambda *a, **k: loads.append(1))
    for where in (a_file, a_file / "run1"):
        line = one_line_error(
            capsys,
            *("train", "--model", "baseline", "--data", synthetic_root),
            *("--out", tmp_path / "run", "--tensorboard", where),
        )
        assert "--tensorboard" in line and "not a folder" in line, line
    assert loads == [] and not (tmp_path / "run").exists()
    line = one_line_error(capsys, "tune", "--data", tmp_path / "missing", "--tensorboard", a_file)
    assert "--tensorboard" in line and "not a folder" in line, line
    line = one_line_error(capsys, "tune", "--data", tmp_path / "missing", "--out", a_file)
    assert "--out" in line and "not a folder" in line, line
