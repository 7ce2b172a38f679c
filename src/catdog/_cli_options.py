"""The arguments of ``catdog train``, ``evaluate``, ``predict``, ``export``, ``audit``,
``similar`` and ``tune`` (``catdog.cli`` binds them to their commands).

``catdog train``'s options are made from [`RunConfig`][catdog.runs.config.RunConfig]'s fields:
each field's metadata (see ``catdog.runs.config.setting``) holds its flags, help and
``argparse`` type, and ``run_config`` turns the parsed arguments back
into a ``RunConfig``.
"""

from __future__ import annotations

import argparse
from dataclasses import Field, fields
from pathlib import Path

from catdog._argtypes import positive_int, seconds, weights
from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_IMAGE_SIDE,
    DEFAULT_SEED,
    ENGINES,
    EXPORT_FORMAT_ALIASES,
    EXPORT_FORMATS,
    EXPORT_QUANTIZATIONS,
    SPLIT_NAMES,
    TUNERS,
    TUNING_BACKBONES,
    TUNING_FAMILIES,
)
from catdog.data.images import PREDICT_BATCH_SIZE
from catdog.runs.config import DEMO_DEFAULTS, FROZEN_BASE_DEFAULTS, RunConfig
from catdog.runs.data import demo_data


def run_config(args: argparse.Namespace) -> RunConfig:
    """The [`RunConfig`][catdog.runs.config.RunConfig] that ``catdog train``'s arguments describe.

    Options left out take ``RunConfig``'s defaults (or, with ``--demo``, the demo's).
    """
    given = {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}
    if args.demo:
        for key in ("model", "image_size", "epochs"):
            given.setdefault(key, DEMO_DEFAULTS[key])
        given["data"] = str(demo_data(DEMO_DEFAULTS["images_per_class"], given["image_size"]))
        given.setdefault("out", "runs/demo")
    given.setdefault("out", f"runs/{given.get('model', RunConfig.model)}")
    return RunConfig(**{**given, "out": Path(given["out"])})


def add_train(sub) -> argparse.ArgumentParser:
    """``catdog train``: ``--demo`` and one option per ``RunConfig`` field with flags."""
    train = sub.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model, then write the best model, history, "
        "report and plots into --out. Rerun the same command to resume.",
    )
    train.add_argument(
        "--demo", action="store_true", help="offline demo: generated data, small model, ~a minute"
    )
    for setting in fields(RunConfig):  # one option per setting: see catdog.runs.config.setting
        if setting.metadata["flags"]:
            train.add_argument(
                *setting.metadata["flags"],
                dest=setting.name,
                default=argparse.SUPPRESS,  # left out: RunConfig's default (or the demo's)
                help=_option_help(setting),
                **setting.metadata["argparse"],
            )
    return train


def _option_help(setting: Field) -> str:
    """The ``--help`` of a ``RunConfig`` field's option: its help with ``{default}`` (the
    field's default), ``{demo}`` (``--demo``'s) and ``{frozen}`` (a frozen base's) filled in."""
    return setting.metadata["help"].format(
        default=setting.default,
        demo=DEMO_DEFAULTS.get(setting.name),
        frozen=FROZEN_BASE_DEFAULTS.get(setting.name),
    )


def _add_engine(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument(
        "--engine",
        default=default,
        choices=ENGINES,
        help="where a .keras model runs: litert (converted once, cached; fastest on a CPU), "
        "tensorflow, or auto (litert, else tensorflow). Default: "
        + (
            "auto"
            if default
            else "the engine of the run's report.json (a run's model is scored as its run "
            "scored it), else auto"
        ),
    )
    parser.add_argument(
        "--tta",
        choices=("flip",),
        help="test-time augmentation: average each image's and its mirror image's prediction",
    )


def add_evaluate(sub) -> argparse.ArgumentParser:
    """``catdog evaluate`` (see [`evaluate_run`][catdog.runs.evaluate.evaluate_run])."""
    evaluate = sub.add_parser(
        "evaluate",
        help="score a saved model on an image folder",
        description="Score a saved model on a split of an image folder. Only the scored split "
        "is decoded (the others too only where a run's data cannot be recognised otherwise), "
        "into a temporary folder removed when done, also when stopped by Ctrl-C or SIGTERM "
        "(one a killed run left is removed by the next run). Stopped, it does not resume: "
        "run it again from the start.",
    )
    evaluate.add_argument("model", help="a .keras model file")
    evaluate.add_argument(
        "--data", help="image folder (as for train); default: the run's data (config.json)"
    )
    evaluate.add_argument("--split", default="test", choices=SPLIT_NAMES)
    evaluate.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    evaluate.add_argument(
        "--seed",
        type=int,
        help="split seed; default: the run's (config.json beside the model), for its data "
        f"wherever it is now (recognised by its files), else {DEFAULT_SEED}",
    )
    evaluate.add_argument("--out", help="folder for report.txt and report.json")
    _add_engine(evaluate, default=None)
    return evaluate


PREDICT_DESCRIPTION = (
    "Classify images: one row per image (path, class, probability), printed tab-separated or "
    "written to --output. Images are read and run in batches, decoded in parallel while the "
    "model runs: memory does not grow with their number. A file that does not decode "
    "(truncated, not an image) is skipped with a warning and its row says why (the error "
    "column); the others are scored."
)
PREDICT_EPILOG = (
    "Exit status: 0 when every image was scored, 3 when some were skipped (their rows say why; "
    "the others were written), 2 for an error before any row (a missing image, a bad option, "
    "an existing --output). Stopped (Ctrl-C, SIGTERM), it writes nothing and leaves no "
    "temporary file; it does not resume: run it again from the start."
)


def add_predict(sub) -> argparse.ArgumentParser:
    """``catdog predict``."""
    predict = sub.add_parser(
        "predict",
        help="classify image files and folders of images",
        description=PREDICT_DESCRIPTION,
        epilog=PREDICT_EPILOG,
    )
    predict.add_argument("model", help="a .keras model file, or a .tflite file")
    predict.add_argument(
        "images",
        nargs="+",
        help="image files and folders (searched recursively for .bmp, .gif, .jpeg, .jpg, "
        ".png and .webp files, sorted), in any mix",
    )
    predict.add_argument(
        "--class-names",
        help="comma-separated; default: the model's own (or class_names.json beside it)",
    )
    predict.add_argument(
        "--output",
        metavar="PATH",
        help="write the rows to PATH instead of printing them: .csv (with a header) or .jsonl "
        "(JSON lines), each with every class's probability too; written under a temporary "
        "name and renamed when done. An existing PATH is refused unless --overwrite",
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output file"
    )
    predict.add_argument(
        "--batch-size",
        type=positive_int,
        default=PREDICT_BATCH_SIZE,
        help=f"images read and run at a time (default {PREDICT_BATCH_SIZE})",
    )
    _add_engine(predict)
    return predict


def add_export(sub) -> argparse.ArgumentParser:
    """``catdog export``."""
    export = sub.add_parser("export", help="export a saved model")
    export.add_argument("model", help="a .keras model file")
    export.add_argument(
        "--format", default="litert", choices=(*EXPORT_FORMATS, *EXPORT_FORMAT_ALIASES)
    )
    export.add_argument(
        "--quantize", choices=[q for q in EXPORT_QUANTIZATIONS if q], help="litert: smaller weights"
    )
    export.add_argument("--out", required=True, help="output file or folder")
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file and its labels file, or a folder holding nothing but "
        "a previous SavedModel export",
    )
    return export


def add_audit(sub) -> argparse.ArgumentParser:
    """``catdog audit`` (see [`catdog.audit`][catdog.training.audit.audit])."""
    audit = sub.add_parser(
        "audit",
        help="find label errors, near duplicates (leaks across splits) and outliers in data",
        description="Audit an image folder before training on it: the features of a "
        "pretrained base, out-of-fold probabilities of a k-fold head on them, then cleanlab's "
        "checks. Writes audit.md (with thumbnail grids) and audit.json into --out; "
        "`catdog train --exclude OUT/audit.json` leaves the flagged files out. Needs the "
        "audit extra.",
    )
    add = audit.add_argument
    add("data", help="image folder (as for train)")
    add(
        "--model",
        default="transfer",
        help="where the features come from: a registered model with a pretrained base "
        "(default transfer) or a .keras model file (a run's RUN/model.keras)",
    )
    add("--backbone", help="the base of --model transfer (default mobilenet_v2)")
    add_weights(add, "base weights of a registered model")
    add("--out", default="audit", help="folder for audit.md, audit.json and figures")
    add("--folds", type=positive_int, default=5, help="folds of the out-of-fold head")
    add("--image-size", type=positive_int, help="square side (default: the model's input size)")
    add("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    add("--seed", type=int, default=DEFAULT_SEED, help="split seed, as for train")
    add(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="where the base runs: auto (litert for thousands of images), litert or tensorflow",
    )
    return audit


def add_similar(sub) -> argparse.ArgumentParser:
    """``catdog similar`` (see [`catdog.similar`][catdog.runs.embeddings.similar])."""
    similar = sub.add_parser(
        "similar",
        help="show the images of a run's data most similar to given images",
        description="For each image, list the k images of the run's data (train, validation "
        "and test splits) that the run's model sees as most similar: rank, cosine similarity, "
        "split, class, path. The similarity is that of the embeddings of the model's "
        "pretrained base (a transfer model or a backbone); the run's images are embedded once "
        "and kept in RUN/embeddings.npz. A near copy of an image of the data finds it first.",
    )
    similar.add_argument(
        "images", nargs="+", help="image files and folders (searched recursively), in any mix"
    )
    similar.add_argument("--run", required=True, help="a run folder written by catdog train")
    similar.add_argument(
        "-k", type=positive_int, default=8, help="similar images per image (default 8)"
    )
    similar.add_argument(
        "--out",
        metavar="FOLDER",
        help="also draw the images and their neighbours: FOLDER/similar.png",
    )
    similar.add_argument(
        "--batch-size",
        type=positive_int,
        default=PREDICT_BATCH_SIZE,
        help=f"images read and run at a time (default {PREDICT_BATCH_SIZE})",
    )
    similar.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="where the model's base runs: auto (litert, else tensorflow), litert or tensorflow",
    )
    return similar


def add_review(sub) -> argparse.ArgumentParser:
    """``catdog review`` (see [`catdog.report.review`][catdog.report.review])."""
    review = sub.add_parser(
        "review",
        help="write a review page of what catdog flagged, to decide on in a browser",
        description="Write one self-contained HTML page (thumbnails inside, no server, works "
        "offline) of the images an audit flagged, of the unknown and unsure rows of a "
        "predictions file, or of catdog suggest's list. Decide per image with mouse or "
        "keyboard (keep, exclude, relabel as a class) and save decisions.json: `catdog train "
        "--exclude decisions.json --relabel decisions.json` reads it. Nothing on disk changes.",
    )
    review.add_argument(
        "source",
        help="an audit folder (or its audit.json), a predictions .csv or a suggestions.csv",
    )
    review.add_argument(
        "--out", default="review.html", help="the page to write (default review.html)"
    )
    review.add_argument("--overwrite", action="store_true", help="replace an existing page")
    review.add_argument(
        "--run", help="the run whose classes a decision may name (for catdog suggest's list)"
    )
    return review


def add_add_class(sub) -> argparse.ArgumentParser:
    """``catdog add-class`` (see [`add_class`][catdog.training.prototypes.add_class])."""
    add = sub.add_parser(
        "add-class",
        help="add a class to a few-shot model from a folder of its photos, in seconds",
        description="Add a class to a few-shot model (catdog train --model prototypes): its "
        "prototype is the mean embedding of the photos given; no other class changes and "
        "nothing is retrained. The unknown answer takes the new photos into its neighbour "
        "bank. Writes a new model; the run's own model.keras and record stay as trained.",
    )
    add.add_argument("model", help="a run folder or a .keras model of a few-shot run")
    add.add_argument("images", nargs="+", help="the new class's image files and folders")
    add.add_argument("--name", help="the new class's name (default: the first folder's name)")
    add.add_argument(
        "--out", help="the model to write (default: model_with_NAME.keras beside the model)"
    )
    return add


def add_suggest(sub) -> argparse.ArgumentParser:
    """``catdog suggest`` (see [`suggest`][catdog.runs.suggest.suggest])."""
    suggest = sub.add_parser(
        "suggest",
        help="rank unlabelled photos by how much labelling them is worth to a run",
        description="Rank unlabelled photos for labelling: each the most unlike the run's "
        "labelled photos and the ones already suggested (farthest-point on the run's "
        "embedding, chosen on real photos); photos farther from every labelled photo than "
        "the labelled photos are from each other are kept apart as probably none of the "
        "classes. Writes OUT/suggestions.csv (catdog review reads it) and "
        "OUT/suggestions.png.",
    )
    suggest.add_argument("images", nargs="+", help="unlabelled image files and folders")
    suggest.add_argument("--run", required=True, help="a run folder written by catdog train")
    suggest.add_argument("-n", type=positive_int, default=50, help="photos to suggest (default 50)")
    suggest.add_argument("--out", required=True, metavar="FOLDER", help="where to write")
    suggest.add_argument(
        "--engine", default="auto", choices=ENGINES,
        help="where the model's base runs: auto (litert, else tensorflow), litert or tensorflow",
    )  # fmt: skip
    return suggest


def add_card(sub) -> argparse.ArgumentParser:
    """``catdog card``: (re)write a run folder's model card."""
    card = sub.add_parser("card", help="(re)write a run folder's model card, README.md")
    card.add_argument("run", help="a run folder written by catdog train")
    return card


def add_models(sub) -> argparse.ArgumentParser:
    """``catdog models``: list the registered models."""
    models = sub.add_parser("models", help="list the registered models")
    models.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*ed'")
    return models


def add_weights(add, what: str) -> None:
    """``--weights``: a pretrained base's weights (``imagenet``, ``none`` or a file)."""
    help_text = f"{what}: imagenet (default), none, or a weights file"
    add("--weights", type=weights, default="imagenet", help=help_text)


def add_cluster_timeout(add, what: str) -> None:
    """``--cluster-timeout``: how long to wait for ``what`` to start."""
    add(
        "--cluster-timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"how long to wait for {what} to start before stopping with an error "
        f"(default {DEFAULT_CLUSTER_TIMEOUT:g})",
    )


def add_tune(sub) -> argparse.ArgumentParser:
    """``catdog tune`` (see [`catdog.tune`][catdog.training.tuning.tune])."""
    tune = sub.add_parser(
        "tune",
        help="search hyperparameters with KerasTuner",
        description="Run a KerasTuner search over the catdog zoo. Rerun the "
        "same command to resume it. Needs KerasTuner (catdog's tuner extra).",
    )
    add = tune.add_argument
    add("--data", help="image folder (as for train)")
    add("--demo", action="store_true", help="generated data, offline")
    add("--tuner", default="hyperband", choices=TUNERS)
    add("--max-trials", type=positive_int, default=10, help="trials for random and bayesian")
    add("--epochs", type=positive_int, default=5, help="epochs per trial (hyperband: the most)")
    add(
        "--families",
        help="comma-separated models to search: of family cnn, or pretrained (default "
        f"{','.join(TUNING_FAMILIES)})",
    )
    add(
        "--backbones",
        help="comma-separated backbones of the transfer model (default "
        f"{','.join(TUNING_BACKBONES)}; mobilenet_v2 with a weights file)",
    )
    add("--out", default="runs/tuning", help="search folder")
    add("--image-size", type=positive_int, help=f"square side, default {DEFAULT_IMAGE_SIDE}")
    add("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE)
    add_weights(add, "transfer base weights")
    add("--overwrite", action="store_true", help="start the search afresh")
    add("--tensorboard", metavar="DIR", help="TensorBoard logs of every trial under DIR")
    add("--seed", type=int, default=DEFAULT_SEED)
    add_cluster_timeout(add, "the oracle (a worker of a distributed search)")
    return tune
