"""Publishing a run folder all or nothing: every file is written into ``.resume/publish/`` and
swapped in only when all are there; the previous run's files are restored on any failure."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from catdog.errors import InvalidArgumentError
from catdog.io import write_json
from catdog.report import plotting
from catdog.report.reliability import plot_reliability, plot_risk_coverage
from catdog.runs.card import is_foreign_readme, write_model_card
from catdog.runs.config import STAGE_BOUNDARY
from catdog.runs.record import RunFolder
from catdog.timings import Timings

if TYPE_CHECKING:
    from catdog.data.pipelines import Splits
    from catdog.training.feature_cache import Features

logger = logging.getLogger("catdog")


def drop_empty_state(folder: RunFolder, created: bool) -> None:
    """While the lock is held: a run that left no state leaves no folder (none at all when
    the run ``created`` it and it is empty)."""
    staging = folder.state
    if staging.is_dir() and {p.name for p in staging.iterdir()} <= {RunFolder.LOCK}:
        # filelock detects a lock file unlinked under a waiting process and retries
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # another process may be arriving
            if created and not any(folder.path.iterdir()):
                folder.path.rmdir()


def clear_state(folder: RunFolder) -> None:
    """Drop a run's saved state (all but the lock); its config.json goes first, so a kill
    midway leaves state without a config, which the next run drops too."""
    folder.pending_config.unlink(missing_ok=True)
    for path in folder.state.iterdir():
        if path.name != RunFolder.LOCK:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def publish_run(
    folder: RunFolder,
    splits: Splits,
    record: dict,
    history: dict,
    fine_tune_start: int | None,
    features: Features | None = None,
    *,
    timings: Timings | None = None,
) -> dict:
    """Write the run's files from the finished training state, then drop the state; return
    the run's summary (``out``, ``report``, ``history``).

    All or nothing: every file is first written into ``.resume/publish``; only once all are
    there are they swapped into the run folder together (the previous run's files moved aside
    into ``.resume/previous`` and put back if any step fails), so a failure at any point leaves
    the previous run whole.

    Args:
        folder: the run folder (its ``.resume/best.keras`` is the model published).
        splits: the data the run trained on (scored, calibrated on, drawn).
        record: the run's ``config.json`` record (its calibration is added).
        history: the training history, per epoch.
        fine_tune_start: the epoch fine-tuning started at, or ``None``.
        features: a transfer model's base features computed before, for calibration.
        timings: the job's timings so far; the publishing phases are added, and the whole is
            recorded in ``report.json`` (``timings``) and shown by the model card.
    """
    from catdog.models.saving import load_model, save_model

    previous = folder.state / "previous"
    _restore(previous, folder.path, [])  # a swap killed midway: put the previous run back first
    new = RunFolder(folder.state / "publish")
    shutil.rmtree(new.path, ignore_errors=True)  # a publish killed midway
    new.path.mkdir()
    timings = timings or Timings()
    with timings.phase("saving"):
        model = load_model(folder.best)
    with timings.phase("calibration"):  # the temperature and the unknown answer's threshold
        calibration = _calibrate(model, splits, record, features)
    with timings.phase("evaluation"):
        report = _evaluate(model, splits, calibration, features)
    with timings.phase("saving"):
        if calibration is None:
            shutil.copyfile(folder.best, new.model)
        else:
            save_model(model, new.model)
            record["calibration"] = calibration.to_dict()
            report.calibration = {**record["calibration"], "summary": _summary(calibration)}
        write_json(new.class_names, splits.class_names)
        write_json(new.config, record)
        write_json(new.history, {"history": history, "fine_tune_start": fine_tune_start})
    with timings.phase("figures"):  # with Grad-CAM
        _plot(new, splits, model, report, history, fine_tune_start, record)
        _plot_confidence(new, calibration, report)
    with timings.phase("saving"):
        report.timings = timings.to_dict()  # the card shows them: saved just before it
        report.save(new.path)
        _write_card(new, folder)
        _swap_in(new.path, folder.path, previous)
        clear_state(folder)  # the lock stays until the caller releases it
    return {"out": str(folder.path), "report": report, "history": history}


def _evaluate(model, splits, calibration, features):
    """The test split's report: from the outputs the calibration computed on the run's
    features (the base does not run again), else from a pass of the model over the split."""
    from catdog.report.evaluation import evaluate, report_of_outputs

    test = calibration.probabilities.get("test") if calibration is not None else None
    if features is None or "test" not in features.embeddings or test is None:
        return evaluate(model, splits)
    _, after, labels = test
    scores = calibration.scores.get("test")
    return report_of_outputs(model, splits, after, labels, scores, engine=features.engine)


def _plot(new: RunFolder, splits, model, report, history, fine_tune_start, record) -> None:
    """Draw the run's figures into ``new``."""
    plotting.plot_samples(splits, path=new / RunFolder.SAMPLES_PLOT)
    plotting.plot_history(
        history,
        fine_tune_start=fine_tune_start,
        baseline=report.baseline,
        fine_tune_label=STAGE_BOUNDARY if record.get("cache_features") else "fine-tuning",
        path=new / RunFolder.HISTORY_PLOT,
    )
    plotting.plot_confusion_matrix(report, path=new / RunFolder.CONFUSION_PLOT)
    plotting.plot_misclassified(  # with Grad-CAM: what the model took as evidence
        report,
        image_size=splits.image_size,
        model=model,
        path=new / RunFolder.MISCLASSIFIED_PLOT,
    )


def _calibrate(model, splits, record: dict, features=None):
    """Calibrate the run's model as its record says; ``None`` when both parts are off."""
    from catdog.models.classifier import ImageClassifier
    from catdog.training.calibration import calibrate

    temperature = record.get("calibrate", True)
    coverage = record.get("unknown_coverage")
    if not temperature and coverage is None:
        return None
    if not isinstance(model, ImageClassifier):
        logger.warning(
            "%r is not a catdog model (an ImageClassifier): it is left uncalibrated, without "
            "an unknown answer.",
            model.name,
        )
        return None
    return calibrate(
        model, splits, temperature=temperature, unknown_coverage=coverage, features=features
    )


def _summary(calibration) -> str:
    """One line: the temperature and the held-out split's ECE, NLL and Brier, before → after."""
    split = "test" if "test" in calibration.metrics else "validation"
    before, after = calibration.metrics[split]["before"], calibration.metrics[split]["after"]
    return (
        f"temperature {calibration.temperature:.3f}; {split} split ECE (15 bins) "
        f"{before['ece']:.4f} → {after['ece']:.4f}, NLL {before['nll']:.4f} → "
        f"{after['nll']:.4f}, Brier {before['brier']:.4f} → {after['brier']:.4f}"
    )


def _plot_confidence(new: RunFolder, calibration, report) -> None:
    """The reliability diagram (before and after calibration) and the risk-coverage curve."""
    if calibration is not None and calibration.probabilities:
        split = "test" if "test" in calibration.probabilities else "validation"
        before, after, labels = calibration.probabilities[split]
        plot_reliability(before, after, labels, path=new / RunFolder.RELIABILITY_PLOT)
    if report.risk_coverage:
        by = report.unknown["method"] if report.unknown else "top probability"
        plot_risk_coverage(
            {f"by {by}": report.risk_coverage}, path=new / RunFolder.RISK_COVERAGE_PLOT
        )


def _write_card(new: RunFolder, folder: RunFolder) -> None:
    """Write the model card into ``new``, unless ``folder`` holds a README.md of the user's."""
    if is_foreign_readme(folder.card):  # the user's own README.md stays
        logger.warning(
            "No model card written: %r is not a catdog model card; catdog will not overwrite "
            "it. Move it, or train into another folder.",
            str(folder.card),
        )
    else:
        write_model_card(new.path)


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target`` (one folder tree: atomic)."""
    os.replace(source, target)


def _swap_in(new: Path, out: Path, previous: Path) -> None:
    """Move every file of ``new`` into ``out``, the files they replace into ``previous``; on
    any failure put the previous files back and remove the new ones."""
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    placed: list[str] = []
    try:
        for name in RunFolder.FILES:
            if not (new / name).exists():
                continue
            if (out / name).exists():
                _move(out / name, previous / name)
            placed.append(name)
            _move(new / name, out / name)
    except BaseException:
        _restore(previous, out, placed)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(new, ignore_errors=True)


def _restore(previous: Path, out: Path, placed: list[str]) -> None:
    """Undo a swap: remove the new files ``placed`` in ``out``, move ``previous``'s back."""
    if not previous.is_dir():
        return
    for name in placed:
        if not (previous / name).exists():  # no previous file to put back in its place
            (out / name).unlink(missing_ok=True)
    for kept in previous.iterdir():
        _move(kept, out / kept.name)
    shutil.rmtree(previous, ignore_errors=True)


def finished_summary(folder: RunFolder) -> dict:
    """The summary of the finished run in ``folder``, from its files (checked)."""
    from catdog.report.evaluation import Report

    report = Report.from_dict(folder.read(RunFolder.REPORT), source=repr(str(folder.report)))
    history = folder.read(RunFolder.HISTORY) or {}
    if not isinstance(history, dict) or not isinstance(history.get("history", {}), dict):
        raise InvalidArgumentError(
            f"{str(folder.history)!r}: field 'history' must be an object of per-epoch "
            "metrics; the file was edited or damaged. Restore it (catdog train wrote it)."
        )
    return {
        "out": str(folder.path),
        "report": report,
        "history": history.get("history", {}),
        "finished_before": True,
    }
