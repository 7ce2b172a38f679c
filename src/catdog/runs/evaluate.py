"""Scoring a saved model again, as its run scored it: what ``catdog evaluate`` does.

A model in a run folder (``RUN/model.keras``) is scored on its run's data, on its run's split
of that data (also where the data has moved since: it is recognised by the files the run
recorded), with the engine its report was scored with.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEED,
    ENGINES,
    SPLIT_NAMES,
    check_choice,
    check_class_names,
)
from catdog.errors import InvalidArgumentError
from catdog.io import temporary_folder
from catdog.runs.data import load_splits
from catdog.runs.record import RunFolder, split_fingerprint, splits_match

if TYPE_CHECKING:
    from catdog.report.evaluation import Report

logger = logging.getLogger("catdog")


class _Asked(NamedTuple):
    """What the caller asked to score: the model file, the split and the seed (or None)."""

    model: str
    split: str
    seed: int | None


def evaluate_run(
    model_path: str | os.PathLike,
    data: str | None = None,
    *,
    split: str = "test",
    seed: int | None = None,
    engine: str | None = None,
    tta: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Report:
    """Score a saved model on a split of an image folder, as its run folder says.

    Beside a run's model (``RUN/model.keras``, with the run's ``config.json``), ``data``
    defaults to the run's data and the run's split of it is scored, also where the data has
    moved (recognised by the files the run recorded); another ``seed`` for the run's data is
    refused, since its split would put training images into ``split``. A model without a run
    folder needs ``data`` and is split with ``seed`` (default 1337). The model's class names
    (else ``class_names.json`` beside it) map the data's class folders to its outputs. Only
    the images of ``split`` are decoded (the other splits' too only where the run's data
    cannot be recognised otherwise: it left out files that do not decode), cached in a
    temporary folder, not in memory, removed when done, also by an exception (the CLI turns
    SIGTERM into one); one that a killed evaluation left is removed by the next.

    Args:
        model_path: a ``.keras`` model file.
        data: an image folder, or ``cats_and_dogs``; default: the run's.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        seed: the split seed; default: the run's for its data, else 1337.
        engine: ``"tensorflow"``, ``"litert"`` or ``"auto"``; default: the engine of the run's
            ``report.json``, else ``"auto"``.
        tta: ``"flip"`` averages each image's and its mirror image's prediction.
        batch_size: images per batch.

    Examples:
        ```python
        print(evaluate_run("runs/demo/model.keras"))
        ```
    """
    from catdog.models.saving import load_model
    from catdog.report.evaluation import evaluate

    check_choice("split", split, SPLIT_NAMES)
    folder = RunFolder.of_model(model_path)
    model = load_model(model_path)
    run = folder.record()
    _run_data(data, run)  # before anything else: a model without a run needs data
    engine = engine or _run_engine(folder, run) or "auto"
    # the decoded images go to a temporary folder, not memory: a folder of any size is read
    # once and scored in batches, so memory does not grow with the number of images
    with temporary_folder("catdog-evaluate-") as cache:
        splits = run_splits(
            model_path, model, data, split=split, seed=seed, batch_size=batch_size, cache=cache
        )
        return evaluate(model, splits, split=split, engine=engine, tta=tta)


def run_splits(
    model_path: str | os.PathLike,
    model,
    data: str | None = None,
    *,
    split: str = "test",
    seed: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache: str | os.PathLike | None = "memory",
    decode: tuple[str, ...] | None = None,
):
    """The [`Splits`][catdog.data.pipelines.Splits] a saved model is scored on, as
    [`evaluate_run`][catdog.runs.evaluate.evaluate_run] makes them: the run's data (unless
    ``data``) split as the run split it, at the model's input size, without the run's
    exclusions, labelled in the model's class order; decoded images cached in ``cache``.

    ``split`` (the split to be scored) and ``seed`` are as in ``evaluate_run``; ``decode``
    names the splits whose images are decoded (default: ``split`` alone; ``()``: none, only
    the file lists and labels), more only where the run's data cannot be recognised otherwise.

    Examples:
        ```python
        splits = run_splits("runs/demo/model.keras", model)
        ```
    """
    from catdog.models.classifier import class_names_of

    folder = RunFolder.of_model(model_path)
    run = folder.record()
    data = _run_data(data, run)
    class_names = class_names_of(model) or _class_names_beside(folder)
    if class_names is None:
        logger.warning(
            "%s names no classes (nor has class_names.json beside it): the data's class "
            "folders, sorted, are taken to be the model's outputs in order.",
            model_path,
        )
    size = tuple(model.input_shape[1:3])
    # the run's exclusions (catdog train --exclude) hold for the run's data: the paths it
    # recorded (an older catdog recorded only where the list file was)
    exclude = relabel = None
    if run and _same_data(data, run["data"]):
        exclude = run["excluded"] if "excluded" in run else run.get("exclude")
        relabel = run.get("relabelled")  # and its relabelled images keep their new class
    wanted = (split,) if decode is None else tuple(decode)

    def load(seed: int, decode=wanted):
        return load_splits(
            data, size, batch_size, seed, class_names=class_names, exclude=exclude, cache=cache,
            decode=decode, relabel=relabel,
        )  # fmt: skip

    return _evaluation_splits(_Asked(str(model_path), split, seed), run, data, load)


def _run_data(data: str | None, run: dict | None) -> str:
    """``data``, else the run's data; without either, an error asking for it."""
    data = data or (run or {}).get("data")
    if not data:
        raise InvalidArgumentError(
            "Pass --data FOLDER: the model has no run folder (config.json) to take it from."
        )
    return data


def _class_names_beside(folder: RunFolder) -> list[str] | None:
    """The class names in the run folder's ``class_names.json`` (checked), or None."""
    names = folder.read(RunFolder.CLASS_NAMES)
    return None if names is None else check_class_names(names, repr(str(folder.class_names)))


def _run_engine(folder: RunFolder, run: dict | None) -> str | None:
    """The engine the run scored its report with (``report.json`` beside the model)."""
    from catdog.report.evaluation import Report

    found = folder.read(RunFolder.REPORT) if run is not None else None
    if found is None:
        return None
    engine = Report.from_dict(found, source=repr(str(folder.report))).engine
    if engine is None:
        return "tensorflow"  # a report from before engines were recorded: the run's default
    return check_choice(
        f"{str(folder.report)!r}: field 'engine'",
        engine,
        ENGINES,
        hint="The file was edited or damaged: restore it, or pass --engine.",
    )


def _same_data(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def _refuse_another_seed(asked: _Asked, run: dict, data: str, moved: bool) -> None:
    if asked.seed is not None and asked.seed != run["seed"]:
        where = f"the files in {data} (recorded in {run['data']})" if moved else data
        raise InvalidArgumentError(
            f"{asked.model} was trained on {where} with --seed {run['seed']}; with --seed "
            f"{asked.seed} its split would put training images into the {asked.split} split. "
            "Leave --seed out to use the run's split."
        )


def _evaluation_splits(asked: _Asked, run: dict | None, data: str, load):
    """The splits to score on: for the run's data, the run's split.

    The run's data is recognised where it was trained, and anywhere else by the files the
    run recorded (``config.json``'s split fingerprints, relative to the data folder): a moved
    copy gets the run's seed too. Another seed for the run's data is refused.
    """
    seed = DEFAULT_SEED if asked.seed is None else asked.seed
    if run is None:
        return load(seed)
    recorded = run.get("splits")
    if _same_data(data, run["data"]):
        _refuse_another_seed(asked, run, data, moved=False)
        splits, matched = _recognised(load, run["seed"], recorded, asked.split)
        if recorded and not matched:
            logger.warning(
                "The files in %s changed since the model was trained: its splits differ from "
                "the run's, so the %s split may hold images the model was trained on.",
                data,
                asked.split,
            )
        return splits
    if not recorded:  # a run without fingerprints: its data is known by its place only
        return load(seed)
    splits, matched = _recognised(load, run["seed"], recorded, asked.split)
    if matched:
        _refuse_another_seed(asked, run, data, moved=True)
        logger.info(
            "%s holds the files the model was trained on (recorded in %s): scoring the run's "
            "%s split (seed %s).",
            data,
            run["data"],
            asked.split,
            run["seed"],
        )
        return splits
    return splits if seed == run["seed"] else load(seed)


def _recognised(load, seed: int, recorded: dict | None, scored: str):
    """``(the splits of seed, whether they hold the files the run recorded)``.

    Only the ``scored`` split is decoded, unless another split lists more files than the run
    recorded: the run left out its files that do not decode, so every split is decoded then,
    to tell.
    """
    splits = load(seed)
    if not recorded or splits_match(recorded, split_fingerprint(splits)):
        return splits, bool(recorded)
    listed = {s: len(files) for s, files in splits.files.items() if s != scored}
    if any(count > recorded.get(s, {}).get("count", 0) for s, count in listed.items()):
        splits = load(seed, decode=SPLIT_NAMES)
    return splits, splits_match(recorded, split_fingerprint(splits))
