"""Run records (``catdog.runs.record``): hand-edited run files are named field by field."""

from __future__ import annotations

import json
import logging

import pytest

from catdog.errors import InvalidArgumentError
from catdog.runs.job import run_training

from .helpers import copy_run, one_line_error


def test_hand_edited_run_files_are_one_line_errors_naming_the_field(
    finished_run, tmp_path, capsys, caplog
):
    from catdog.report.evaluation import Report

    run = copy_run(finished_run, tmp_path / "run")
    config_path, report_path = run.out / "config.json", run.out / "report.json"
    good_config, good_report = config_path.read_text(), report_path.read_text()
    model = run.out / "model.keras"
    for field_, value in (("seed", "7"), ("data", 12345), ("model", None)):
        config = json.loads(good_config)
        config[field_] = value
        config_path.write_text(json.dumps(config))
        line = one_line_error(capsys, "evaluate", model)
        assert "config.json" in line and f"field {field_!r}" in line, line
        line = one_line_error(capsys, "card", run.out)
        assert "config.json" in line and f"field {field_!r}" in line, line
    config_path.write_text("{not json")
    assert "not valid JSON" in one_line_error(capsys, "evaluate", model)
    config_path.write_text(good_config)

    report = json.loads(good_report)
    del report["confusion"]
    report_path.write_text(json.dumps(report))
    for argv in (("evaluate", model), ("card", run.out)):
        line = one_line_error(capsys, *argv)
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
