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
from pathlib import Path

from catdog import __version__
from catdog.errors import CatdogError, InvalidArgumentError

logger = logging.getLogger("catdog")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _weights(text: str) -> str | None:
    return None if text.lower() == "none" else text


def cmd_train(args: argparse.Namespace) -> int:
    from catdog.workflow import DEMO_DEFAULTS, RunConfig, demo_data, run_training

    if args.demo:
        for key in ("model", "image_size", "epochs"):
            if getattr(args, key) is None:
                setattr(args, key, DEMO_DEFAULTS[key])
        args.data = str(demo_data(DEMO_DEFAULTS["images_per_class"], args.image_size))
        args.out = args.out or "runs/demo"
    config = RunConfig(
        out=Path(args.out or f"runs/{args.model or 'transfer'}"),
        model=args.model or "transfer",
        data=args.data,
        epochs=args.epochs or 20,
        fine_tune_epochs=args.fine_tune_epochs,
        unfreeze_from=args.unfreeze_from,
        image_size=args.image_size or 160,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        weights=args.weights,
        early_stopping=args.early_stopping,
        cache_features=args.fast,
        augment_copies=args.augment_copies,
        precision=args.precision,
        jit_compile={"auto": "auto", "true": True, "false": False}[args.jit_compile],
        seed=args.seed,
    )
    result = run_training(config)
    print(result["report"])
    print(f"\nrun folder: {result['out']}")
    return 0


def _beside(model_path: str, name: str):
    """The JSON file ``name`` in the model's folder (a run folder), or None."""
    path = Path(model_path).with_name(name)
    return json.loads(path.read_text()) if path.is_file() else None


def _class_names_for(model_path: str, given: str | None, count: int) -> list[str]:
    if given:
        return [name.strip() for name in given.split(",")]
    return _beside(model_path, "class_names.json") or [f"class_{i}" for i in range(count)]


def _same_data(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def _evaluation_seed(args: argparse.Namespace, run: dict | None, data: str) -> int:
    """The seed that reproduces the run's split of its own data; refuse another one."""
    from catdog.data import DEFAULT_SEED

    if run is None or not _same_data(data, run["data"]):
        return DEFAULT_SEED if args.seed is None else args.seed
    if args.seed is not None and args.seed != run["seed"]:
        raise InvalidArgumentError(
            f"{args.model} was trained on {data} with --seed {run['seed']}; with --seed "
            f"{args.seed} its split would put training images into the {args.split} split. "
            "Leave --seed out to use the run's split."
        )
    return run["seed"]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from catdog.data import from_directory, load_cats_and_dogs
    from catdog.evaluation import evaluate
    from catdog.saving import load_model
    from catdog.workflow import split_fingerprint

    model = load_model(args.model)
    run = _beside(args.model, "config.json")
    data = args.data or (run or {}).get("data")
    if not data:
        raise InvalidArgumentError(
            "Pass --data FOLDER: the model has no run folder (config.json) to take it from."
        )
    seed = _evaluation_seed(args, run, data)
    class_names = _beside(args.model, "class_names.json")
    if class_names is None:
        logger.warning(
            "%s has no class_names.json beside it: the data's class folders, sorted, are "
            "taken to be the model's outputs in order.",
            args.model,
        )
    options = dict(image_size=tuple(model.input_shape[1:3]), batch_size=args.batch_size, seed=seed)
    if data == "cats_and_dogs":
        splits = load_cats_and_dogs(**options)
    else:
        splits = from_directory(data, class_names=class_names, **options)
    recorded = (run or {}).get("splits")
    if recorded and _same_data(data, run["data"]) and split_fingerprint(splits) != recorded:
        logger.warning(
            "The files in %s changed since the model was trained: its splits differ from the "
            "run's, so the %s split may hold images the model was trained on.",
            data,
            args.split,
        )
    report = evaluate(model, splits, split=args.split)
    print(report)
    if args.out:
        report.save(args.out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from catdog.evaluation import predict
    from catdog.saving import load_model

    model = load_model(args.model)
    names = _class_names_for(args.model, args.class_names, model.output_shape[-1])
    for p in predict(model, args.images, names):
        print(f"{p.path}\t{p.class_name}\t{p.probability:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from catdog.saving import export, load_model

    path = export(load_model(args.model), args.out, format=args.format, overwrite=args.overwrite)
    print(path)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from catdog.tuning import FAMILIES

    families = [f.strip() for f in args.families.split(",")] if args.families else list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"Unknown families {unknown}; choose from {', '.join(FAMILIES)}.")
    from catdog.data import from_directory
    from catdog.tuning import tune
    from catdog.workflow import DEMO_DEFAULTS, demo_data

    if args.demo:
        args.image_size = args.image_size or DEMO_DEFAULTS["image_size"]
        args.data = str(demo_data(DEMO_DEFAULTS["images_per_class"], args.image_size))
        args.weights = None if args.weights == "imagenet" else args.weights
    if not args.data:
        raise ValueError("Pass --data PATH (an image folder) or --demo.")
    size = args.image_size or 160
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
        seed=args.seed,
    )
    best = search.oracle.get_best_trials(1)
    if best:
        print(f"best {search.oracle.objective.name}: {best[0].score:.4f}")
        print(json.dumps(best[0].hyperparameters.values, indent=2))
    print(f"\nsummary: {out / 'summary.json'}\nbest model: {out / 'best_model.keras'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from catdog.models import _REGISTRY, build_model, list_models

    print(f"{'name':<14}{'parameters':>12}{'trainable':>12}  description")
    for name in list_models(args.pattern):
        kwargs = {"weights": None} if name == "transfer" else {}
        model = build_model(name, **kwargs)
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        doc = (_REGISTRY[name].__doc__ or "").strip().splitlines()[0]
        print(f"{name:<14}{model.count_params():>12,}{trainable:>12,}  {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catdog", description="Train, evaluate and use cat-vs-dog image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"catdog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model, then write the best model, history, "
        "report and plots into --out. Rerun the same command to resume.",
    )
    train.add_argument(
        "--demo",
        action="store_true",
        help="offline demo: generated data, small model, about a minute",
    )
    train.add_argument(
        "--model",
        help="registered model name (see `catdog models`); "
        "default transfer, or preprocessed with --demo",
    )
    train.add_argument(
        "--data",
        default="cats_and_dogs",
        help="image folder, or cats_and_dogs to download the post's dataset",
    )
    train.add_argument("--epochs", type=_positive_int, help="default 20 (8 with --demo)")
    train.add_argument(
        "--fine-tune-epochs",
        type=_non_negative_int,
        default=0,
        help="epochs of fine-tuning the top of the base (transfer only)",
    )
    train.add_argument(
        "--unfreeze-from",
        type=int,
        default=100,
        help="first base layer to unfreeze when fine-tuning",
    )
    train.add_argument("--out", help="run folder (default runs/MODEL, runs/demo with --demo)")
    train.add_argument("--image-size", type=_positive_int, help="square side, default 160")
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--fine-tune-learning-rate", type=float, default=1e-5)
    train.add_argument(
        "--weights",
        type=_weights,
        default="imagenet",
        help="transfer base weights: imagenet, none, or a weights file",
    )
    train.add_argument(
        "--early-stopping",
        type=_positive_int,
        help="stop after this many epochs without improvement",
    )
    train.add_argument(
        "--fast",
        action="store_true",
        help="transfer: compute the frozen base's features once and train the "
        "head on them (much faster; see --augment-copies)",
    )
    train.add_argument(
        "--augment-copies",
        type=_non_negative_int,
        default=0,
        help="with --fast: augmented copies of each training image to cache",
    )
    train.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        help="layer precision (mixed helps on GPUs; measure on CPUs)",
    )
    train.add_argument(
        "--jit-compile",
        choices=("auto", "true", "false"),
        default="auto",
        help="XLA compilation of the training step",
    )
    train.add_argument("--seed", type=int, default=1337)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="score a saved model on an image folder")
    evaluate.add_argument("model", help="a .keras model file")
    evaluate.add_argument(
        "--data", help="image folder (as for train); default: the run's data (config.json)"
    )
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--batch-size", type=_positive_int, default=32)
    evaluate.add_argument(
        "--seed",
        type=int,
        help="split seed; default: the run's (config.json beside the model), else 1337",
    )
    evaluate.add_argument("--out", help="folder for report.txt and report.json")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify image files")
    predict.add_argument("model", help="a .keras model file")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument(
        "--class-names", help="comma-separated; default: class_names.json beside the model"
    )
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", help="export a saved model")
    export.add_argument("model", help="a .keras model file")
    export.add_argument("--format", default="tflite", choices=("keras", "saved_model", "tflite"))
    export.add_argument("--out", required=True, help="output file or folder")
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file, or a folder holding a previous SavedModel export",
    )
    export.set_defaults(func=cmd_export)

    tune = sub.add_parser(
        "tune",
        help="search hyperparameters with KerasTuner",
        description="Run a KerasTuner search over the catdog zoo. Rerun the "
        'same command to resume it. Needs pip install "catdog[tuner]".',
    )
    tune.add_argument("--data", help="image folder (as for train)")
    tune.add_argument("--demo", action="store_true", help="generated data, offline")
    tune.add_argument("--tuner", default="hyperband", choices=("random", "hyperband", "bayesian"))
    tune.add_argument(
        "--max-trials", type=_positive_int, default=10, help="trials for random and bayesian search"
    )
    tune.add_argument(
        "--epochs",
        type=_positive_int,
        default=5,
        help="epochs per trial (hyperband: the most epochs of a trial)",
    )
    tune.add_argument(
        "--families", help="comma-separated subset of baseline,augmented,preprocessed,transfer"
    )
    tune.add_argument("--out", default="runs/tuning", help="search folder")
    tune.add_argument("--image-size", type=_positive_int, help="square side, default 160")
    tune.add_argument("--batch-size", type=_positive_int, default=32)
    tune.add_argument(
        "--weights",
        type=_weights,
        default="imagenet",
        help="transfer base weights: imagenet, none, or a weights file",
    )
    tune.add_argument("--overwrite", action="store_true", help="start the search afresh")
    tune.add_argument("--seed", type=int, default=1337)
    tune.set_defaults(func=cmd_tune)

    models = sub.add_parser("models", help="list the registered models")
    models.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*ed'")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catdog`` console script."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="catdog: warning: %(message)s")
    try:
        return args.func(args)
    except (CatdogError, FileNotFoundError, ValueError) as error:
        if os.environ.get("CATDOG_DEBUG"):
            raise
        print(f"catdog: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("catdog: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
