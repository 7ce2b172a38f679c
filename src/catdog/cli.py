"""The ``catdog`` command line: train, evaluate, predict, export, tune, audit, models.

Each command parses its arguments and calls the library; errors a user can fix are printed as
one line on stderr with exit status 2 (set ``CATDOG_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from catdog._argtypes import (  # noqa: F401 (also catdog.cli's: the example scripts use them)
    layer_position,
    learning_rate,
    non_negative_int,
    positive_int,
    seconds,
    weights,
)
from catdog._cli_options import (
    add_add_class,
    add_audit,
    add_card,
    add_evaluate,
    add_export,
    add_models,
    add_predict,
    add_review,
    add_similar,
    add_suggest,
    add_train,
    add_tune,
    run_config,
)
from catdog._exits import (
    SIGTERM_STOPS,
    ProgressLine,
    noting_skipped,
    sigterm_stops,
    skipped_status,
    stopped,
)
from catdog._rules import (
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_IMAGE_SIDE,
    check_output_folder,
    check_outside_data,
)
from catdog._version import __version__
from catdog.data import pipelines
from catdog.data.files import image_files
from catdog.deploy.labels import resolve_class_names
from catdog.errors import CatdogError, InvalidArgumentError, OutputError
from catdog.report.review import read_review_source, write_review_page
from catdog.runs.card import write_model_card
from catdog.runs.config import DEMO_DEFAULTS
from catdog.runs.data import demo_data
from catdog.runs.embeddings import similar_table
from catdog.runs.evaluate import evaluate_run
from catdog.runs.job import run_training
from catdog.runs.record import RunFolder
from catdog.runs.suggest import plot_suggestions, suggest, write_suggestions
from catdog.timings import STARTUP, Timings, describe, process_age

logger = logging.getLogger("catdog")


def cmd_train(args: argparse.Namespace) -> int:
    timings = Timings()
    timings.add(STARTUP, process_age() or 0.0)  # the interpreter and this command line
    with timings.phase("imports"):  # TensorFlow and Keras
        from catdog.training.distribute import describe_task, is_chief, make_strategy

    timeout = getattr(args, "cluster_timeout", DEFAULT_CLUSTER_TIMEOUT)  # left out: absent
    strategy = make_strategy(getattr(args, "strategy", None), timeout)  # before any TF operation
    result = run_training(run_config(args), strategy=strategy, timings=timings)
    task = describe_task(strategy)
    if not is_chief(strategy):
        print(f"{task}: training finished; the chief writes the run folder {result['out']}")
    else:
        print(result["report"])
        print(f"\nrun folder: {result['out']}")
        if not result.get("finished_before") and result["report"].timings:
            print(f"time {describe(result['report'].timings)}")
    if task and result.get("weights_sha256"):
        print(f"{task}: final weights sha256 {result['weights_sha256']}")
    return 0


def _input_file(path: str, expected: str) -> None:
    """Refuse a folder given where a file is expected, saying what it is."""
    if Path(path).is_dir():
        kind = (
            "a SavedModel folder (an export, for TensorFlow Serving)"
            if (Path(path) / "saved_model.pb").is_file()
            else "a folder"
        )
        raise InvalidArgumentError(f"{path!r} is {kind}; {expected}.")


_MODEL_FILE = f"pass a .keras model file (catdog train writes RUN/{RunFolder.MODEL})"


def cmd_evaluate(args: argparse.Namespace) -> int:
    _input_file(args.model, _MODEL_FILE)
    if args.out:
        check_output_folder("--out", args.out, data=args.data)
        if Path(args.out).resolve() == Path(args.model).resolve().parent:
            raise InvalidArgumentError(
                f"--out {args.out!r} is the model's run folder, whose report.json is the run's "
                "own: choose another folder for this evaluation's report."
            )
    report = evaluate_run(
        args.model,
        args.data,
        split=args.split,
        seed=args.seed,
        engine=args.engine,
        tta=args.tta,
        batch_size=args.batch_size,
    )
    print(report)
    if args.out:
        report.save(args.out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from catdog.deploy.predict import iter_predictions
    from catdog.deploy.prediction_files import (
        check_output_file,
        prediction_row,
        tab_separated,
        write_predictions,
    )

    _input_file(
        args.model,
        "pass a .keras model file, or a .tflite file (a SavedModel is predicted from the "
        ".keras model it was exported from)",
    )
    if args.output:
        check_output_file(args.output, overwrite=args.overwrite)  # before any work
        check_outside_data("--output", args.output, args.images)
    images = image_files(args.images)  # folders searched recursively
    timings = Timings()
    timings.add(STARTUP, process_age() or 0.0)
    with timings.phase("loading the model"):  # and preparing its engine
        model, names = _predict_model(args)
        predictions = iter_predictions(
            model, images, names, engine=args.engine, tta=args.tta, batch_size=args.batch_size
        )
    skipped: list[str] = []  # the images that could not be read
    predictions = noting_skipped(predictions, skipped)
    predictions = _with_progress(predictions, len(images), args.batch_size, bool(args.output))
    with timings.phase("decoding and predicting"):  # and writing the rows as they come
        if args.output:
            count = write_predictions(predictions, args.output, overwrite=args.overwrite)
            logger.info("wrote %d prediction(s) to %s", count, args.output)
        else:
            for p in predictions:
                print(tab_separated(prediction_row(p)))
    logger.info("time %s", describe(timings.to_dict(), images=len(images) - len(skipped)))
    return skipped_status(skipped, len(images))  # 3 when some images were skipped


def _predict_model(args: argparse.Namespace):
    """``(model, class names)`` of ``catdog predict``: a .tflite or a .keras model."""
    from catdog.deploy.prediction_files import prediction_model

    names = None
    if args.class_names:
        names = [n.strip() for n in args.class_names.split(",")]
    return prediction_model(args.model, names)


PROGRESS_MIN_IMAGES = 1000
"""Runs of this many images show a progress bar even when stderr is not a terminal (a log)."""


def _with_progress(predictions, total: int, batch_size: int, to_file: bool):
    """``predictions``, with a progress line (a ``ProgressLine``) on stderr after each batch
    when there is more than one batch, the rows do not go to the terminal, and stderr is a
    terminal or there are ``PROGRESS_MIN_IMAGES`` images or more."""
    rows_on_screen = not to_file and sys.stdout.isatty()
    many = sys.stderr.isatty() or total >= PROGRESS_MIN_IMAGES
    if total <= batch_size or rows_on_screen or not many:
        yield from predictions
        return
    bar = ProgressLine(total)
    try:
        for done, prediction in enumerate(predictions, start=1):
            yield prediction
            if done % batch_size == 0 or done == total:
                bar.update(done)
    except BaseException:
        print(file=sys.stderr)  # an error message starts on a line of its own
        raise


def cmd_export(args: argparse.Namespace) -> int:
    from catdog.deploy.export import FORMAT_ALIASES, export
    from catdog.models.saving import load_model

    _input_file(args.model, _MODEL_FILE)
    model = load_model(args.model)
    keras_file = FORMAT_ALIASES.get(args.format, args.format) == "keras"
    names = None if keras_file else resolve_class_names(model, args.model)  # as predict names them
    path = export(
        model,
        args.out,
        format=args.format,
        overwrite=args.overwrite,
        quantize=args.quantize,
        class_names=names,
    )
    print(path)
    return 0


def _tuning_splits(args: argparse.Namespace):
    """The splits ``catdog tune`` searches on: ``--data`` or the generated demo data."""
    if args.demo:
        args.image_size = args.image_size or DEMO_DEFAULTS["image_size"]
        args.data = str(demo_data(DEMO_DEFAULTS["images_per_class"], args.image_size))
        args.weights = None if args.weights == "imagenet" else args.weights
    if not args.data:
        raise InvalidArgumentError("Pass --data PATH (an image folder) or --demo.")
    size = args.image_size or DEFAULT_IMAGE_SIDE
    return pipelines.from_directory(
        args.data, image_size=(size, size), batch_size=args.batch_size, seed=args.seed
    )


def _print_search(search, out: Path) -> None:
    best = search.oracle.get_best_trials(1)
    if best:
        print(f"best {search.oracle.objective.name}: {best[0].score:.4f}")
        print(json.dumps(best[0].hyperparameters.values, indent=2))
    print(f"\nsummary: {out / 'summary.json'}\nbest model: {out / 'best_model.keras'}")


def cmd_tune(args: argparse.Namespace) -> int:
    from catdog.training.tuning import FAMILIES, check_families, distributed_role

    role = distributed_role()  # a bad KERASTUNER_* variable fails before the data loads
    check_output_folder("--out", args.out)  # output paths, before any work
    check_output_folder("--tensorboard", args.tensorboard)
    families = check_families(
        [f.strip() for f in args.families.split(",")] if args.families else FAMILIES
    )
    from catdog.training.tuning import tune

    out = Path(args.out)
    search = tune(
        _tuning_splits(args),
        args.tuner,
        args.max_trials,
        epochs=args.epochs,
        directory=out.parent,
        project_name=out.name,
        overwrite=args.overwrite,
        families=families,
        weights=args.weights,
        backbones=[b.strip() for b in args.backbones.split(",")] if args.backbones else None,
        callbacks=_tensorboard(args.tensorboard),
        seed=args.seed,
        cluster_timeout=args.cluster_timeout or DEFAULT_CLUSTER_TIMEOUT,
    )
    if role not in (None, "chief"):  # the oracle is the chief's, and may be gone
        print(f"{role}: no trial left; the chief writes {out / 'summary.json'}")
    else:
        _print_search(search, out)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from catdog.training.audit import audit, require_cleanlab

    require_cleanlab()  # before any work: the extra may be missing
    check_output_folder("--out", args.out, data=args.data)
    report = audit(
        args.data,
        model=args.model,
        backbone=args.backbone,
        weights=args.weights,
        folds=args.folds,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=args.seed,
        engine=args.engine,
    )
    print(report.summary_line())
    timings = Timings.from_dict(report.settings["timings"])
    with timings.phase("writing the report"):
        print(f"report: {report.save(args.out)}")
    print(f"time {describe(timings.to_dict(), images=sum(report.counts.values()))}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    check_output_folder("--out", args.out, data=(RunFolder(args.run).record() or {}).get("data"))
    options = {"engine": args.engine, "batch_size": args.batch_size}
    print(similar_table(args.images, args.run, args.k, out=args.out, **options))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    data, class_names, items = read_review_source(args.source)
    if args.run is not None:  # the classes a decision may name: the run's
        class_names = (RunFolder(args.run).record() or {}).get("class_names") or class_names
    if data is not None:  # an audit's: the page must not join the audited folder
        check_outside_data("--out", args.out, data)
    if os.path.exists(args.out) and not args.overwrite:
        raise OutputError(f"{args.out!r} exists: pass --overwrite to replace it, or another --out.")
    page = write_review_page(items, class_names, data, args.out, f"catdog review of {args.source}")
    print(f"{len(items)} image(s) to review: open {page} in a browser; it saves decisions.json")
    return 0


def cmd_add_class(args: argparse.Namespace) -> int:
    from catdog.models.saving import load_model, save_model  # Keras: not on --help's path
    from catdog.training.prototypes import add_class

    model_path = Path(args.model)
    model_path = model_path / "model.keras" if model_path.is_dir() else model_path
    first = Path(args.images[0]).resolve()
    name = args.name or (first if first.is_dir() else first.parent).name
    out = Path(args.out or model_path.with_name(f"model_with_{name}.keras"))
    check_outside_data("--out", out, args.images)
    if out.exists():
        raise OutputError(f"{str(out)!r} exists: pass another --out, or remove it first.")
    grown = add_class(load_model(model_path), args.images, name)
    print(f"{save_model(grown, out)}: classes {', '.join(grown.class_names)}")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    run_data = (RunFolder(args.run).record() or {}).get("data")
    check_output_folder("--out", args.out, data=[*args.images, *([run_data] if run_data else [])])
    found = suggest(args.images, args.run, args.n, engine=args.engine)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = write_suggestions(found, out / "suggestions.csv")
    figure = out / "suggestions.png"
    plot_suggestions(found, figure)
    ranked = sum(s.rank is not None for s in found)
    print(f"{ranked} photo(s) to label, {len(found) - ranked} kept apart: {table}, {figure}")
    print(f"label them: catdog review {table} --run {args.run}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    print(write_model_card(args.run))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from catdog.models.registry import models_table

    print(models_table(args.pattern))
    return 0


def _tensorboard(folder: str | None) -> list:
    if not folder:
        return []
    import keras

    return [keras.callbacks.TensorBoard(log_dir=folder)]


def build_parser() -> argparse.ArgumentParser:
    """The ``catdog`` argument parser (its sub-commands call the library)."""
    parser = argparse.ArgumentParser(
        prog="catdog", description="Train, evaluate and use cat-vs-dog image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"catdog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub).set_defaults(func=cmd_train)
    add_evaluate(sub).set_defaults(func=cmd_evaluate)
    add_predict(sub).set_defaults(func=cmd_predict)
    add_export(sub).set_defaults(func=cmd_export)
    add_tune(sub).set_defaults(func=cmd_tune)
    add_audit(sub).set_defaults(func=cmd_audit)
    add_similar(sub).set_defaults(func=cmd_similar)
    add_review(sub).set_defaults(func=cmd_review)
    add_add_class(sub).set_defaults(func=cmd_add_class)
    add_suggest(sub).set_defaults(func=cmd_suggest)
    add_card(sub).set_defaults(func=cmd_card)
    add_models(sub).set_defaults(func=cmd_models)
    return parser


class _LogFormatter(logging.Formatter):
    """``catdog: message`` for information, ``catdog: warning: message`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        kind = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"catdog: {kind}{record.getMessage()}"


def _user_error(error: BaseException) -> bool:
    """A mistake the user can fix: catdog's own errors, and OS errors naming a user's path."""
    return isinstance(error, CatdogError) or (
        isinstance(error, OSError) and error.filename is not None
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catdog`` console script.

    User errors (catdog's own, and OS errors on the user's paths) print one line and return 2;
    anything else is a bug and shows its traceback (so does every error with
    ``CATDOG_DEBUG=1``). Ctrl-C returns 130 and, for the ``SIGTERM_STOPS`` commands, SIGTERM
    143, after one line saying what is true of the stopped command (whether it resumes).
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # other libraries: warnings
    logging.getLogger("catdog").setLevel(logging.INFO)  # catdog: what it does, too
    try:
        with sigterm_stops(args.command in SIGTERM_STOPS):
            return args.func(args)
    except (CatdogError, OSError) as error:
        if os.environ.get("CATDOG_DEBUG") or not _user_error(error):
            raise
        print(f"catdog: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM for the SIGTERM_STOPS commands
        line, status = stopped(args, stop)
        print(line, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
