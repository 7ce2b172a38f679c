"""``catdog train`` runs (``catdog.runs.job``): a rerun trains nothing again, a failed run leaves
the previous one intact, and bad data or arguments fail before any training."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

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
from catdog.data.pipelines import from_directory
from catdog.data.synthetic import make_synthetic_dataset
from catdog.errors import (
    BusyError,
    DatasetError,
    DatasetNotFoundError,
    InvalidArgumentError,
    TrainingDivergedError,
)
from catdog.runs.job import run_training

from .helpers import HOLD_LOCK, copy_run, one_line_error, small_config, snapshot


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

    config = small_config(synthetic_root, tmp_path / "run")
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
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run.out)
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
    assert snapshot(run.out) == before  # the old model still has its own class names
    assert json.loads((run.out / "class_names.json").read_text()) == ["cats", "dogs"]

    # the interrupted run is resumable, but only as itself and on the same files
    with pytest.raises(InvalidArgumentError, match=r"unfinished run .*changed: data: "):
        run_training(replace(run, epochs=3))
    shutil.copy(next((three / "train" / "birds").iterdir()), three / "train" / "birds" / "n.jpg")
    with pytest.raises(InvalidArgumentError, match="data changed"):
        run_training(replace(run, data=str(three)))
    assert snapshot(run.out) == before

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


def test_a_diverged_run_saves_no_model_and_fails(synthetic_root, tmp_path, capsys):
    out = tmp_path / "run"
    config = small_config(synthetic_root, out, learning_rate=1e38, epochs=2)
    with pytest.raises(TrainingDivergedError, match="Lower the learning rate") as caught:
        run_training(config)
    assert caught.value.history  # the epochs that ran
    assert not out.exists(), "no model (and no run folder) from a diverged run"
    line = one_line_error(
        capsys,
        *("train", "--model", "baseline", "--data", synthetic_root, "--out", out),
        *("--image-size", 16, "--epochs", 2, "--learning-rate", 1e38),
    )
    assert "diverged" in line and not out.exists()


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
            run_training(small_config(root, out))
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
    config = small_config(
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
            run_training(small_config(synthetic_root, out))
        assert (out / ".resume" / "lock").exists()  # the other run's state is untouched
    finally:
        holder.communicate("")
