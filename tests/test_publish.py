"""Publishing a run folder (``catdog.runs.publish``): all or nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from catdog.runs.job import run_training

from .helpers import copy_run, small_config


def _tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` but the run's own state (``.resume/``)."""
    from catdog.io import sha256sum

    return {
        str(p.relative_to(folder)): sha256sum(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".resume" not in p.relative_to(folder).parts
    }


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

    run = copy_run(finished_run, tmp_path / "run")
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


@pytest.mark.slow  # a transfer run and its evaluation (about 20 s)
def test_a_cached_feature_run_scores_its_test_split_from_the_one_pass_of_its_base(
    synthetic_root, tmp_path, monkeypatch
):
    import catdog.report.evaluation
    from catdog.runs.evaluate import evaluate_run

    from .test_evaluation import assert_same_report

    real, passes = catdog.report.evaluation.evaluate, []

    def counting(*args, **kwargs):
        passes.append(kwargs.get("split", "test"))
        return real(*args, **kwargs)

    monkeypatch.setattr(catdog.report.evaluation, "evaluate", counting)
    config = replace(
        small_config(synthetic_root, tmp_path / "run"),
        model="transfer", weights=None, image_size=32, model_kwargs={}, cache_features=True,
    )  # fmt: skip
    result = run_training(config)
    assert passes == []  # the test split was scored from the features pass, not run again
    timings = result["report"].timings
    assert timings["features"] > 0 and timings["evaluation"] < timings["features"]
    recorded = json.loads((config.out / "report.json").read_text())
    assert recorded["engine"] == "tensorflow" and recorded["unknown"]["method"] == "knn"
    monkeypatch.setattr(catdog.report.evaluation, "evaluate", real)
    again = evaluate_run(config.out / "model.keras").to_dict()  # the whole model, on its images
    for fields in (recorded, again):
        fields.pop("calibration"), fields.pop("timings")
    assert_same_report(again, recorded, rel=1e-4)
