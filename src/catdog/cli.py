"""The ``catdog`` command line: train, evaluate, predict, export, tune, models.

Each command parses its arguments and calls the library; errors a user can fix are printed as
one line on stderr with exit status 2 (set ``CATDOG_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from catdog import __version__
from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLUSTER_TIMEOUT,
    DEFAULT_IMAGE_SIDE,
    DEFAULT_SEED,
    ENGINES,
    EXPORT_FORMAT_ALIASES,
    EXPORT_FORMATS,
    EXPORT_QUANTIZATIONS,
    PRECISIONS,
    SPLIT_NAMES,
    STRATEGIES,
    TUNERS,
    TUNING_BACKBONES,
    TUNING_FAMILIES,
    check_output_folder,
)
from catdog.errors import CatdogError, InvalidArgumentError
from catdog.runs.config import DEMO_DEFAULTS, FROZEN_BASE_DEFAULTS, RunConfig
from catdog.runs.job import demo_data, run_training
from catdog.runs.record import run_record

logger = logging.getLogger("catdog")
_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


def positive_int(text: str) -> int:
    """``argparse`` type: a positive integer (also used by the example scripts)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def seconds(text: str) -> float:
    """``argparse`` type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def learning_rate(text: str) -> float | str:
    """``--learning-rate``: a number, or ``auto`` (the learning-rate finder)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def layer_position(text: str) -> float | int | str:
    """``--unfreeze-from``: a fraction (``0.65``), a layer index (``100``) or a layer name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _weights(text: str) -> str | None:
    return None if text.lower() == "none" else text


_JIT = {"auto": "auto", "true": True, "false": False}


def run_config(args: argparse.Namespace) -> RunConfig:
    """The [`RunConfig`][catdog.runs.config.RunConfig] that ``catdog train``'s arguments describe.

    Options left out take ``RunConfig``'s defaults (or, with ``--demo``, the demo's).
    """
    # options left out are None; --weights none is None on purpose
    values = {k: v for k, v in vars(args).items() if v is not None or k == "weights"}
    if args.demo:
        for key in ("model", "image_size", "epochs"):
            values.setdefault(key, DEMO_DEFAULTS[key])
        values["data"] = str(demo_data(DEMO_DEFAULTS["images_per_class"], values["image_size"]))
        values.setdefault("out", "runs/demo")
    values.setdefault("out", f"runs/{values.get('model', _DEFAULTS['model'])}")
    values["out"] = Path(values["out"])
    values["jit_compile"] = _JIT[values["jit_compile"]]
    names = {f.name for f in fields(RunConfig)}
    return RunConfig(**{k: v for k, v in values.items() if k in names})


def cmd_train(args: argparse.Namespace) -> int:
    from catdog.training.distribute import describe_task, is_chief, make_strategy

    timeout = args.cluster_timeout or DEFAULT_CLUSTER_TIMEOUT
    strategy = make_strategy(args.strategy, timeout)  # first: before any TensorFlow operation
    result = run_training(run_config(args), strategy=strategy)
    task = describe_task(strategy)
    if not is_chief(strategy):
        print(f"{task}: training finished; the chief writes the run folder {result['out']}")
    else:
        print(result["report"])
        print(f"\nrun folder: {result['out']}")
    if task and result.get("weights_sha256"):
        print(f"{task}: final weights sha256 {result['weights_sha256']}")
    return 0


def _check_class_names(names: list, source: str) -> list[str]:
    """``names`` if they are distinct, non-empty strings; else a one-line error naming
    ``source``."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgumentError(f"{source} must list class names (non-empty strings).")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidArgumentError(
            f"{source} names {', '.join(map(repr, twice))} more than once; give each class "
            "its own name, in the model's output order."
        )
    return names


def _class_names_beside(model_path: str) -> list[str] | None:
    """The class names in ``class_names.json`` next to the model (its run folder), or None."""
    from catdog.runs.record import read_run_file

    path = Path(model_path).with_name("class_names.json")
    names = read_run_file(path)
    return None if names is None else _check_class_names(names, repr(str(path)))


def _input_file(path: str, expected: str) -> None:
    """Refuse a folder given where a file is expected, saying what it is."""
    if Path(path).is_dir():
        kind = (
            "a SavedModel folder (an export, for TensorFlow Serving)"
            if (Path(path) / "saved_model.pb").is_file()
            else "a folder"
        )
        raise InvalidArgumentError(f"{path!r} is {kind}; {expected}.")


_MODEL_FILE = "pass a .keras model file (catdog train writes RUN/model.keras)"


def _same_data(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def _run_engine(model_path: str, run: dict | None) -> str | None:
    """The engine the run scored its report with (``report.json`` beside the model)."""
    from catdog.report.evaluation import Report
    from catdog.runs.record import read_run_file

    path = Path(model_path).with_name("report.json")
    found = read_run_file(path) if run is not None else None
    if found is None:
        return None
    engine = Report.from_dict(found, source=repr(str(path))).engine
    if engine is None:
        return "tensorflow"  # a report from before engines were recorded: the run's default
    if engine not in ENGINES:
        raise InvalidArgumentError(
            f"{str(path)!r}: field 'engine' must be one of {ENGINES}, got {engine!r}; the file "
            "was edited or damaged. Restore it, or pass --engine."
        )
    return engine


def _refuse_another_seed(args: argparse.Namespace, run: dict, data: str, moved: bool) -> None:
    if args.seed is not None and args.seed != run["seed"]:
        where = f"the files in {data} (recorded in {run['data']})" if moved else data
        raise InvalidArgumentError(
            f"{args.model} was trained on {where} with --seed {run['seed']}; with --seed "
            f"{args.seed} its split would put training images into the {args.split} split. "
            "Leave --seed out to use the run's split."
        )


def _evaluation_splits(args: argparse.Namespace, run: dict | None, data: str, load):
    """The splits to score on: for the run's data, the run's split.

    The run's data is recognised where it was trained, and anywhere else by the files the
    run recorded (``config.json``'s split fingerprints, relative to the data folder): a moved
    copy gets the run's seed too. Another ``--seed`` for the run's data is refused.
    """
    from catdog.runs.record import split_fingerprint, splits_match

    seed = DEFAULT_SEED if args.seed is None else args.seed
    if run is None:
        return load(seed)
    recorded = run.get("splits")
    if _same_data(data, run["data"]):
        _refuse_another_seed(args, run, data, moved=False)
        splits = load(run["seed"])
        if recorded and not splits_match(recorded, split_fingerprint(splits)):
            logger.warning(
                "The files in %s changed since the model was trained: its splits differ from "
                "the run's, so the %s split may hold images the model was trained on.",
                data,
                args.split,
            )
        return splits
    if not recorded:  # a run without fingerprints: its data is known by its place only
        return load(seed)
    splits = load(run["seed"])
    if splits_match(recorded, split_fingerprint(splits)):
        _refuse_another_seed(args, run, data, moved=True)
        logger.info(
            "%s holds the files the model was trained on (recorded in %s): scoring the run's "
            "%s split (seed %s).",
            data,
            run["data"],
            args.split,
            run["seed"],
        )
        return splits
    return splits if seed == run["seed"] else load(seed)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from catdog.data.datasets import load_cats_and_dogs
    from catdog.data.pipelines import from_directory
    from catdog.deploy.export import load_model
    from catdog.models.classifier import class_names_of
    from catdog.report.evaluation import evaluate

    _input_file(args.model, _MODEL_FILE)
    model = load_model(args.model)
    run = run_record(Path(args.model).parent)
    data = args.data or (run or {}).get("data")
    if not data:
        raise InvalidArgumentError(
            "Pass --data FOLDER: the model has no run folder (config.json) to take it from."
        )
    engine = args.engine or _run_engine(args.model, run) or "auto"
    class_names = class_names_of(model) or _class_names_beside(args.model)
    if class_names is None:
        logger.warning(
            "%s names no classes (nor has class_names.json beside it): the data's class "
            "folders, sorted, are taken to be the model's outputs in order.",
            args.model,
        )
    options = dict(image_size=tuple(model.input_shape[1:3]), batch_size=args.batch_size)

    def load(seed: int):
        if data == "cats_and_dogs":
            return load_cats_and_dogs(seed=seed, **options)
        return from_directory(data, class_names=class_names, seed=seed, **options)

    splits = _evaluation_splits(args, run, data, load)
    report = evaluate(model, splits, split=args.split, engine=engine, tta=args.tta)
    print(report)
    if args.out:
        report.save(args.out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from catdog.deploy.labels import resolve_class_names
    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.predict import predict

    _input_file(
        args.model,
        "pass a .keras model file, or a .tflite file (a SavedModel is predicted from the "
        ".keras model it was exported from)",
    )
    for image in args.images:
        _input_file(image, f"predict takes image files, e.g. {os.path.join(image, '*.jpg')}")
    names = None
    if args.class_names:
        names = _check_class_names(
            [n.strip() for n in args.class_names.split(",")], "--class-names"
        )
    if Path(args.model).suffix == ".tflite":
        model = LiteRTModel(args.model)
        if not names and model.class_names:
            _check_class_names(model.class_names, repr(str(model.labels_source)))
    else:
        from catdog.deploy.export import load_model

        model = load_model(args.model)
    names = resolve_class_names(model, args.model, names)
    for p in predict(model, args.images, names, engine=args.engine, tta=args.tta):
        print(f"{p.path}\t{p.class_name}\t{p.probability:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from catdog.deploy.export import FORMAT_ALIASES, export, load_model
    from catdog.deploy.labels import resolve_class_names

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


def cmd_tune(args: argparse.Namespace) -> int:
    from catdog.training.tuning import FAMILIES, check_families, distributed_role

    role = distributed_role()  # a bad KERASTUNER_* variable fails before the data loads
    check_output_folder("--out", args.out)  # output paths, before any work
    check_output_folder("--tensorboard", args.tensorboard)
    families = check_families(
        [f.strip() for f in args.families.split(",")] if args.families else FAMILIES
    )
    from catdog.data.pipelines import from_directory
    from catdog.training.tuning import tune

    if args.demo:
        args.image_size = args.image_size or DEMO_DEFAULTS["image_size"]
        args.data = str(demo_data(DEMO_DEFAULTS["images_per_class"], args.image_size))
        args.weights = None if args.weights == "imagenet" else args.weights
    if not args.data:
        raise InvalidArgumentError("Pass --data PATH (an image folder) or --demo.")
    size = args.image_size or DEFAULT_IMAGE_SIDE
    splits = from_directory(
        args.data, image_size=(size, size), batch_size=args.batch_size, seed=args.seed
    )
    out = Path(args.out)
    search = tune(
        splits,
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
        return 0
    best = search.oracle.get_best_trials(1)
    if best:
        print(f"best {search.oracle.objective.name}: {best[0].score:.4f}")
        print(json.dumps(best[0].hyperparameters.values, indent=2))
    print(f"\nsummary: {out / 'summary.json'}\nbest model: {out / 'best_model.keras'}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from catdog.runs.card import write_model_card

    print(write_model_card(args.run))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from catdog.models.registry import list_models, model_spec

    print(f"{'name':<21}{'family':<20}{'input':>6}{'parameters':>13}{'top-1':>7}  description")
    for name in list_models(args.pattern):
        spec = model_spec(name)
        params = f"{spec.params:,}" if spec.params else "?"
        top1 = f"{spec.top1:.1f}" if spec.top1 else "-"
        size = spec.input_size or "-"
        preset = f"(preset of {spec.preset_of}) " if spec.preset_of else ""
        print(
            f"{name:<21}{spec.family:<20}{size:>6}{params:>13}{top1:>7}  {preset}{spec.description}"
        )
    return 0


def _add_train(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model, then write the best model, history, "
        "report and plots into --out. Rerun the same command to resume.",
    )
    add = train.add_argument
    add("--demo", action="store_true", help="offline demo: generated data, small model, ~a minute")
    add(
        "--model",
        help=f"registered model name (see `catdog models`); default {_DEFAULTS['model']}, "
        f"or {DEMO_DEFAULTS['model']} with --demo",
    )
    add("--data", help=f"image folder, or {_DEFAULTS['data']} (default) to download the dataset")
    add(
        "--epochs",
        type=positive_int,
        help=f"default {_DEFAULTS['epochs']} ({DEMO_DEFAULTS['epochs']} with --demo)",
    )
    add(
        "--fine-tune-epochs",
        type=non_negative_int,
        help="epochs of fine-tuning the top of the base (transfer only; default "
        f"{FROZEN_BASE_DEFAULTS['fine_tune_epochs']} for a frozen base; 0 skips it)",
    )
    add(
        "--unfreeze-from",
        type=layer_position,
        help="where fine-tuning starts unfreezing the base: a fraction of its depth "
        f"(default {_DEFAULTS['unfreeze_from']}: the top 35%%), a layer index or a layer name",
    )
    add("--out", help="run folder (default runs/MODEL, runs/demo with --demo)")
    add(
        "--image-size",
        type=positive_int,
        help="square side (default: the model's input size, 160 for the tutorial's models, "
        f"the ImageNet size for a backbone; {DEMO_DEFAULTS['image_size']} with --demo)",
    )
    add("--batch-size", type=positive_int, help=f"default {_DEFAULTS['batch_size']}")
    add(
        "--learning-rate",
        type=learning_rate,
        help=f"default {_DEFAULTS['learning_rate']:g}; auto runs the learning-rate finder first",
    )
    add(
        "--class-weight",
        choices=("balanced",),
        help="balanced: weigh each class's images so that rare classes count as much",
    )
    add("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR")
    add("--fine-tune-learning-rate", type=float, help=_default("fine_tune_learning_rate"))
    add(
        "--weights",
        type=_weights,
        default=_DEFAULTS["weights"],
        help="transfer base weights: imagenet (default), none, or a weights file",
    )
    add(
        "--early-stopping",
        type=non_negative_int,
        help="stop a stage after this many epochs without improvement (default "
        f"{FROZEN_BASE_DEFAULTS['early_stopping']} for a frozen-base transfer model, else off; "
        "0 is off)",
    )
    _add_speed_options(train)
    add("--seed", type=int, help=f"split and initialisation seed (default {_DEFAULTS['seed']})")
    train.set_defaults(func=cmd_train)


def _add_speed_options(train) -> None:
    add = train.add_argument
    add(
        "--cache-features",
        "--fast",
        dest="cache_features",
        action=argparse.BooleanOptionalAction,
        help="transfer: compute the frozen base's features once and train the head on them "
        "(the default for a frozen base; --no-cache-features trains end to end). --fast is "
        "the old name",
    )
    add(
        "--augment-copies",
        type=non_negative_int,
        help="with cached features: augmented copies of each training image to cache "
        f"(default {FROZEN_BASE_DEFAULTS['augment_copies']})",
    )
    add(
        "--precision",
        choices=PRECISIONS,
        help="layer precision (mixed helps on GPUs; measure on CPUs)",
    )
    add(
        "--jit-compile",
        choices=tuple(_JIT),
        default="auto",
        help="XLA compilation of the training step",
    )
    add(
        "--strategy",
        choices=STRATEGIES,
        help="where to train: none (this process), mirrored (every GPU of this machine) or "
        "multi_worker (the cluster in TF_CONFIG; run the same command on every worker with "
        "the same --out on shared storage). Default: mirrored when several GPUs are visible, "
        "else none",
    )
    _add_cluster_timeout(add, "the other workers of TF_CONFIG")


def _add_cluster_timeout(add, what: str) -> None:
    add(
        "--cluster-timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"how long to wait for {what} to start before stopping with an error "
        f"(default {DEFAULT_CLUSTER_TIMEOUT:g})",
    )


def _default(field: str) -> str:
    return f"default {_DEFAULTS[field]:g}"


def _tensorboard(folder: str | None) -> list:
    if not folder:
        return []
    import keras

    return [keras.callbacks.TensorBoard(log_dir=folder)]


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


def _add_evaluate_predict_export(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="score a saved model on an image folder")
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
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify image files")
    predict.add_argument("model", help="a .keras model file, or a .tflite file")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument(
        "--class-names",
        help="comma-separated; default: the model's own (or class_names.json beside it)",
    )
    _add_engine(predict)
    predict.set_defaults(func=cmd_predict)

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
    export.set_defaults(func=cmd_export)


def _add_tune(sub) -> None:
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
    add(
        "--epochs",
        type=positive_int,
        default=5,
        help="epochs per trial (hyperband: the most epochs of a trial)",
    )
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
    add(
        "--weights",
        type=_weights,
        default="imagenet",
        help="transfer base weights: imagenet, none, or a weights file",
    )
    add("--overwrite", action="store_true", help="start the search afresh")
    add("--tensorboard", metavar="DIR", help="TensorBoard logs of every trial under DIR")
    add("--seed", type=int, default=DEFAULT_SEED)
    _add_cluster_timeout(add, "the oracle (a worker of a distributed search)")
    tune.set_defaults(func=cmd_tune)


def build_parser() -> argparse.ArgumentParser:
    """The ``catdog`` argument parser (its sub-commands call the library)."""
    parser = argparse.ArgumentParser(
        prog="catdog", description="Train, evaluate and use cat-vs-dog image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"catdog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_evaluate_predict_export(sub)
    _add_tune(sub)
    card = sub.add_parser("card", help="(re)write a run folder's model card, README.md")
    card.add_argument("run", help="a run folder written by catdog train")
    card.set_defaults(func=cmd_card)
    models = sub.add_parser("models", help="list the registered models")
    models.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*ed'")
    models.set_defaults(func=cmd_models)
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
    ``CATDOG_DEBUG=1``).
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # other libraries: warnings
    logging.getLogger("catdog").setLevel(logging.INFO)  # catdog: what it does, too
    try:
        return args.func(args)
    except (CatdogError, OSError) as error:
        if os.environ.get("CATDOG_DEBUG") or not _user_error(error):
            raise
        print(f"catdog: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("catdog: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
