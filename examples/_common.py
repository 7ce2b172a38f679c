"""What the examples share: their command-line options, the data, and clean error messages.

Every example takes the same options:

    python examples/02_first_model.py                  # downloads cats_and_dogs_filtered once
    python examples/02_first_model.py --data photos/   # any folder of class folders
    python examples/02_first_model.py --demo           # offline: generated images, small and fast

and writes its plots and models under ``--out`` (default ``runs/examples``), one sub-folder per
model, so that ``06_score_on_test.py`` finds the models the earlier examples trained.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import catdog
from catdog._rules import DEFAULT_INPUT_SHAPE, DEFAULT_SEED
from catdog.cli import positive_int

DEMO_IMAGE_SIZE = 64  # generated images are simple: 64x64 is plenty and fast on a CPU
IMAGE_SIZE = DEFAULT_INPUT_SHAPE[0]  # the tutorial's 160x160


def parse_args(
    description: str,
    *,
    epochs: int = 0,
    demo_epochs: int = 0,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the shared options (plus ``add_arguments``'s); fill in defaults; seed Keras."""
    parser = argparse.ArgumentParser(description=description)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data", metavar="PATH", help="a folder of class folders (default: cats_and_dogs_filtered)"
    )
    source.add_argument(
        "--demo", action="store_true", help="offline: generated images, small and fast"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/examples"), help="output folder (%(default)s)"
    )
    if epochs:
        parser.add_argument(
            "--epochs",
            type=positive_int,
            help=f"training epochs (default: {epochs}; {demo_epochs} with --demo)",
        )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        help=f"image height and width in pixels (default: {IMAGE_SIZE}; {DEMO_IMAGE_SIZE} with "
        "--demo)",
    )
    parser.add_argument(
        "--demo-images",
        type=positive_int,
        default=200,
        help="generated training images per class with --demo (%(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split and weights seed")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    if epochs:
        args.epochs = args.epochs or (demo_epochs if args.demo else epochs)
    args.image_size = args.image_size or (DEMO_IMAGE_SIZE if args.demo else IMAGE_SIZE)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import keras

    keras.utils.set_random_seed(args.seed)  # same split, same initial weights, every run
    return args


def load_splits(args: argparse.Namespace) -> catdog.Splits:
    """The train/validation/test splits the options ask for (the same split for every example)."""
    size = (args.image_size, args.image_size)
    if args.demo:
        from catdog.runs.job import demo_data

        folder = demo_data(args.demo_images, args.image_size)  # generated once, then reused
        return catdog.from_directory(folder, image_size=size, seed=args.seed)
    if args.data:
        return catdog.from_directory(args.data, image_size=size, seed=args.seed)
    return catdog.load_cats_and_dogs(image_size=size, seed=args.seed)


def model_folder(args: argparse.Namespace, name: str) -> Path:
    """``--out/name``, created: where an example keeps one model's files."""
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run(main: Callable[[], object]) -> None:
    """Run ``main``; print a user error (bad data, missing file) as one line and exit 2."""
    try:
        main()
    except (catdog.CatdogError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
