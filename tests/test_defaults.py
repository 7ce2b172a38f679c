"""Good defaults: `catdog train` on a folder does the fast, accurate thing without flags."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from catdog.errors import InvalidArgumentError
from catdog.runs.config import (
    FROZEN_BASE_DEFAULTS,
    RunConfig,
    changed_fields,
    check_config,
    resolve_defaults,
)
from catdog.training.fit import train


def test_defaults_live_in_the_workflow_and_the_library_keeps_its_own():
    transfer = resolve_defaults(RunConfig(out=Path("x")))
    assert (transfer.cache_features, transfer.augment_copies) == (True, 0)
    assert (transfer.fine_tune_epochs, transfer.early_stopping) == (0, 3)
    cnn = resolve_defaults(RunConfig(out=Path("x"), model="baseline"))
    assert (cnn.cache_features, cnn.fine_tune_epochs, cnn.early_stopping) == (False, 0, 0)
    today = resolve_defaults(RunConfig(out=Path("x"), cache_features=False, fine_tune_epochs=0))
    assert (today.cache_features, today.augment_copies, today.fine_tune_epochs) == (False, 0, 0)
    trainable = resolve_defaults(RunConfig(out=Path("x"), model_kwargs={"base_trainable": True}))
    assert trainable.cache_features is False  # cached features need a frozen base
    # records of runs made before these defaults: early stopping None and 0 both mean off
    assert changed_fields({"early_stopping": None}, {"early_stopping": 0}) == []
    copies = resolve_defaults(RunConfig(out=Path("x"), model="baseline", augment_copies=4))
    with pytest.raises(InvalidArgumentError, match="--augment-copies needs cached features"):
        check_config(copies)
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    assert defaults["cache_features"] is False and defaults["augment_copies"] == 0
    assert defaults["early_stopping"] is None  # the API call is unchanged


@pytest.mark.slow  # a transfer run with fine-tuning and calibration (about 35 s)
def test_default_cli_run_caches_features_then_fine_tunes_when_asked(
    synthetic_root, tmp_path, caplog, monkeypatch
):
    import logging

    import catdog.report.plotting
    from catdog.cli import main
    from catdog.runs.config import STAGE_BOUNDARY

    labels = []
    real_plot = catdog.report.plotting.plot_history

    def recording_plot(*args, **kwargs):
        labels.append(kwargs.get("fine_tune_label"))
        figure = real_plot(*args, **kwargs)
        legend = figure.axes[0].get_legend()
        labels.append([text.get_text() for text in legend.get_texts()])
        return figure

    monkeypatch.setattr(catdog.report.plotting, "plot_history", recording_plot)

    out = tmp_path / "run"
    argv = ["train", "--model", "transfer", "--weights", "none", "--data", str(synthetic_root)]
    argv += ["--image-size", "32", "--epochs", "2", "--out", str(out), "--fine-tune-epochs", "1"]
    with caplog.at_level(logging.INFO, logger="catdog"):
        assert main(argv) == 0
    err = caplog.text
    assert "training: head on cached features; fine-tuning: up to 1 epoch;" in err
    assert "early stopping: after 3 epochs" in err
    config = json.loads((out / "config.json").read_text())
    expected = {**FROZEN_BASE_DEFAULTS, "fine_tune_epochs": 1}
    assert {k: config[k] for k in FROZEN_BASE_DEFAULTS} == expected
    history = json.loads((out / "history.json").read_text())
    assert history["fine_tune_start"] == 2  # the second stage ran after the first's 2 epochs
    assert len(history["history"]["val_accuracy"]) == 3  # 2 epochs, then 1 of fine-tuning
    import warnings

    from catdog.deploy.export import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Skipping variable loading for optimizer"
        load_model(out / "model.keras")
    # the plot says what the docs say: training metrics change regime at the boundary
    assert labels[0] == STAGE_BOUNDARY and STAGE_BOUNDARY in labels[1]
