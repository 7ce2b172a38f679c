"""Publishing a run folder all or nothing: every file is written into ``.resume/publish/`` and
swapped in only when all are there; the previous run's files are restored on any failure."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from catdog.errors import InvalidArgumentError
from catdog.io import write_json
from catdog.runs.config import STAGE_BOUNDARY
from catdog.runs.record import read_run_file

logger = logging.getLogger("catdog")


def _drop_empty_state(out: Path, staging: Path, created: bool) -> None:
    """While the lock is held: a run that left no state leaves no folder."""
    if staging.is_dir() and {p.name for p in staging.iterdir()} <= {"lock"}:
        # filelock detects a lock file unlinked under a waiting process and retries
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # another process may be arriving
            if created and not any(out.iterdir()):
                out.rmdir()


def _clear_state(staging: Path) -> None:
    """Drop a run's saved state (all but the lock); its config.json goes first, so a kill
    midway leaves state without a config, which the next run drops too."""
    (staging / "config.json").unlink(missing_ok=True)
    for path in staging.iterdir():
        if path.name != "lock":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


RUN_FILES = (
    "model.keras",
    "class_names.json",
    "history.json",
    "report.txt",
    "report.json",
    "samples.png",
    "history.png",
    "confusion_matrix.png",
    "misclassified.png",
    "README.md",
    "config.json",  # last: a folder whose config.json is new holds the new run whole
)
"""The files of a finished run folder, in the order publishing swaps them in."""


def _publish(out: Path, staging: Path, splits, record, history, fine_tune_start) -> dict:
    """Write the run's files from the finished training state, then drop the state.

    All or nothing: every file is first written into ``staging/publish``; only once all are
    there are they swapped into ``out`` together (the previous run's files moved aside into
    ``staging/previous`` and put back if any step fails), so a failure at any point leaves the
    previous run whole.
    """
    from catdog.deploy.export import load_model
    from catdog.report import plotting
    from catdog.report.evaluation import evaluate
    from catdog.runs.card import is_foreign_readme, write_model_card

    previous = staging / "previous"
    _restore(previous, out, [])  # a swap killed midway: put the previous run back first
    new = staging / "publish"
    shutil.rmtree(new, ignore_errors=True)  # a publish killed midway
    new.mkdir()
    best = staging / "best.keras"
    model = load_model(best)
    report = evaluate(model, splits)
    shutil.copyfile(best, new / "model.keras")
    write_json(new / "class_names.json", splits.class_names)
    write_json(new / "config.json", record)
    write_json(new / "history.json", {"history": history, "fine_tune_start": fine_tune_start})
    report.save(new)
    plotting.plot_samples(splits, path=new / "samples.png")
    plotting.plot_history(
        history,
        fine_tune_start=fine_tune_start,
        baseline=report.baseline,
        fine_tune_label=STAGE_BOUNDARY if record.get("cache_features") else "fine-tuning",
        path=new / "history.png",
    )
    plotting.plot_confusion_matrix(report, path=new / "confusion_matrix.png")
    plotting.plot_misclassified(  # with Grad-CAM: what the model took as evidence
        report, image_size=splits.image_size, model=model, path=new / "misclassified.png"
    )
    if is_foreign_readme(out / "README.md"):  # the user's own README.md stays
        logger.warning(
            "No model card written: %r is not a catdog model card; catdog will not overwrite "
            "it. Move it, or train into another folder.",
            str(out / "README.md"),
        )
    else:
        write_model_card(new)
    _swap_in(new, out, previous)
    _clear_state(staging)  # the lock stays until the caller releases it
    return {"out": str(out), "report": report, "history": history}


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
        for name in RUN_FILES:
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


def _finished_summary(out: Path) -> dict:
    """The summary of the finished run in ``out``, from its files (checked)."""
    from catdog.report.evaluation import Report

    path = out / "report.json"
    report = Report.from_dict(read_run_file(path), source=repr(str(path)))
    history = read_run_file(out / "history.json") or {}
    if not isinstance(history, dict) or not isinstance(history.get("history", {}), dict):
        raise InvalidArgumentError(
            f"{str(out / 'history.json')!r}: field 'history' must be an object of per-epoch "
            "metrics; the file was edited or damaged. Restore it (catdog train wrote it)."
        )
    return {
        "out": str(out),
        "report": report,
        "history": history.get("history", {}),
        "finished_before": True,
    }
