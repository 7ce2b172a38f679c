"""Input pipeline throughput: the post's `image_dataset_from_directory` vs catdog.

Generates a folder of JPEGs of mixed sizes (like cats_and_dogs_filtered, whose photos are
about 400px), then, in one run, iterates over (a) the post's pipeline
(`image_dataset_from_directory(...).prefetch(AUTOTUNE)`) and (b) `catdog.from_directory(...)`
for several epochs. Each round builds both pipelines afresh (alternating which goes first);
the medians over rounds of images/second for the first epoch and for the later ones are
printed with their ratios and written to benchmarks/results/input_pipeline.json. catdog's
first epoch includes building the splits, i.e. its one decoding pass that also finds corrupt
files.

    python benchmarks/bench_input_pipeline.py --images 2000 --epochs 3 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))


def _epochs(make_dataset, epochs: int) -> list[float]:
    """Images/second of each epoch; the first includes building the dataset."""
    rates, start = [], time.perf_counter()
    dataset = make_dataset()
    for _ in range(epochs):
        count = sum(int(images.shape[0]) for images, _ in dataset)
        rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
    return rates


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=400, help="typical source image side")
    add_results_arguments(parser, "input_pipeline")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from catdog.data.pipelines import from_directory
    from catdog.data.synthetic import make_synthetic_dataset

    def post(train_dir):
        return keras.utils.image_dataset_from_directory(
            train_dir, shuffle=True, batch_size=32, image_size=(160, 160), verbose=False
        ).prefetch(tf.data.AUTOTUNE)

    def ours(train_dir):
        return from_directory(
            train_dir,
            image_size=(160, 160),
            batch_size=32,
            validation_fraction=0.0,
            test_fraction=0.0,
        ).train

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = make_synthetic_dataset(
            Path(tmp) / "data",
            images_per_class=args.images // 2,
            image_size=(args.size, args.size),
            validation_per_class=1,
            mixed_sizes=True,
            seed=0,
        )
        train_dir = root / "train"
        # Flush the new files and read them once: both pipelines then find them in the page
        # cache, and neither pays for the other's disk writeback.
        os.sync()
        for path in train_dir.rglob("*.jpg"):
            path.read_bytes()
        print(
            f"generated {args.images} JPEGs, {int(args.size * 0.6)}-{int(args.size * 1.6)}px "
            f"sides, in {time.perf_counter() - t:.0f}s"
        )
        runs = {"post": [], "catdog": []}
        for round_ in range(args.rounds):
            order = ("post", "catdog") if round_ % 2 == 0 else ("catdog", "post")
            for name in order:
                make = post if name == "post" else ours
                runs[name].append(_epochs(lambda make=make: make(train_dir), max(2, args.epochs)))

    def medians(rates):
        return (
            statistics.median(r[0] for r in rates),
            statistics.median(x for r in rates for x in r[1:]),
        )

    (post_first, post_later), (our_first, our_later) = (
        medians(runs["post"]),
        medians(runs["catdog"]),
    )
    from _common import machine, write_results

    print(f"machine: {machine()}; medians of {args.rounds} rounds")
    print(f"{'pipeline':<10}{'first epoch img/s':>20}{'later epochs img/s':>20}")
    print(f"{'post':<10}{post_first:>20.0f}{post_later:>20.0f}")
    print(f"{'catdog':<10}{our_first:>20.0f}{our_later:>20.0f}")
    print(
        f"ratio catdog/post: first epoch {our_first / post_first:.2f}x, "
        f"later epochs {our_later / post_later:.2f}x"
    )
    write_results(
        args,
        f"Input pipeline, {args.images} JPEGs of {int(args.size * 0.6)}-"
        f"{int(args.size * 1.6)}px, 160x160 batches of 32",
        [
            {
                "path": "post (image_dataset_from_directory)",
                "first_epoch_images_per_s": round(post_first, 1),
                "later_epochs_images_per_s": round(post_later, 1),
            },
            {
                "path": "catdog.from_directory",
                "first_epoch_images_per_s": round(our_first, 1),
                "later_epochs_images_per_s": round(our_later, 1),
            },
        ],
        f"Medians of {args.rounds} rounds; catdog's first epoch includes its decoding pass.",
        extras={
            "first_epoch_ratio": round(our_first / post_first, 3),
            "later_epochs_ratio": round(our_later / post_later, 3),
        },
    )


if __name__ == "__main__":
    main()
