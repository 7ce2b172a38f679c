"""Training the transfer model: the post's plain-Keras recipe vs catdog's paths.

On one generated dataset (default 2,000 train + 1,000 validation images at 160x160), in one
run, measures wall time (data pipeline included) and accuracy of:

(a) the post's recipe for model 4 as plain Keras code: `image_dataset_from_directory`, its
    test split carved from validation with take/skip, its Sequential model (functional
    preprocessor, RandomFlip, RandomRotation(0.2), frozen MobileNetV2, sigmoid head);
(b) catdog's default path: `from_directory` + `build_transfer_model` + `train`;
(c) catdog with frozen-feature caching (`cache_features=True`), also with 2 augmented copies,
    the features computed by TensorFlow (c, c2) or by LiteRT (c3 with an empty conversion
    cache, so its time includes converting the base; c4 with 2 copies and c5 without, the
    base already converted, as in every later run with the same base);
(d) catdog's default path with `mixed_bfloat16` layers;
(e) `catdog train --model transfer` with no tuning flags (its defaults, `FROZEN_BASE_DEFAULTS`:
    cached features and early stopping since 0.3; 2 augmented copies and up to 5 fine-tuning
    epochs as well in 0.2; default epochs), through `run_training`,
    wall time including evaluation, figures and model card; its validation accuracy is the
    best epoch's (the checkpoint it keeps).

All use the same MobileNetV2 weights: random convolutions with BatchNorm statistics set from
the data (no network here for ImageNet weights; see `catdog.models.weights.make_stand_in_weights`).
Accuracy is the last epoch's validation accuracy and, for every model, the accuracy on the
same held-out files (catdog's test split). `--scaling 1000,2000,4000` times (b) and (c) at
several dataset sizes. Results are printed and written to benchmarks/results/training.json
(`--results` names another file, e.g. for another dataset size).

    python benchmarks/bench_training.py --images 2000 --epochs 20 --skip b,d,e
    python benchmarks/bench_training.py --images 1000 --epochs 10 --skip b,c,c3,c4,c5,d \
        --results benchmarks/results/training_1000.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))


def post_recipe(root: Path, weights: Path, epochs: int, size: int):
    """The post's code for model 4 with the minimal Keras 3 port (`keras.layers` names, single
    tensors instead of one-element lists for the wrapper models); returns (model, history)."""
    import keras
    import tensorflow as tf
    from keras import layers

    train_dataset = keras.utils.image_dataset_from_directory(
        root / "train", shuffle=True, batch_size=32, image_size=(size, size), verbose=False
    )
    validation_dataset = keras.utils.image_dataset_from_directory(
        root / "validation", shuffle=True, batch_size=32, image_size=(size, size), verbose=False
    )
    val_batches = tf.data.experimental.cardinality(validation_dataset)
    validation_dataset = validation_dataset.skip(val_batches // 5)  # the rest is its test set
    train_dataset = train_dataset.prefetch(buffer_size=tf.data.AUTOTUNE)
    validation_dataset = validation_dataset.prefetch(buffer_size=tf.data.AUTOTUNE)

    i = keras.Input(shape=(size, size, 3))
    x = keras.applications.mobilenet_v2.preprocess_input(i)
    preprocessor = keras.Model(inputs=i, outputs=x)  # post: [i], [x] (lists break Keras 3)
    base_model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=str(weights)
    )
    base_model.trainable = False
    i = keras.Input(shape=(size, size, 3))
    x = base_model(i, training=False)
    base_model_layer = keras.Model(inputs=i, outputs=x)
    model4 = keras.Sequential(
        [
            preprocessor,
            layers.RandomFlip(),
            layers.RandomRotation(0.2),
            base_model_layer,
            layers.GlobalMaxPooling2D(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(2, activation="sigmoid"),
        ]
    )
    model4.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model4.fit(
        train_dataset, epochs=epochs, validation_data=validation_dataset, verbose=0
    )
    return model4, history


_TF, _LITE = {"extraction_engine": "tensorflow"}, {"extraction_engine": "litert"}
_CACHED, _COPIES = {"cache_features": True}, {"cache_features": True, "augment_copies": 2}
CATDOG_PATHS = {  # key: (row name, train() options)
    "b": ("catdog default", {}),
    "c": ("catdog cache_features", {**_CACHED, **_TF}),
    "c2": ("catdog cache_features, 2 aug. copies", {**_COPIES, **_TF}),
    "c3": (
        "catdog cache_features, LiteRT extraction (converting)",
        {**_CACHED, **_LITE, "fresh_cache": True},
    ),
    "c4": ("catdog cache_features, 2 aug. copies, LiteRT extraction", {**_COPIES, **_LITE}),
    "c5": ("catdog cache_features, LiteRT extraction (base converted)", {**_CACHED, **_LITE}),
    "d": ("catdog mixed_bfloat16", {"precision": "mixed_bfloat16"}),
}


def catdog_run(root: Path, weights: Path, epochs: int, size: int, **options):
    import catdog

    precision = options.pop("precision", None)
    if options.pop("fresh_cache", False):  # converting the base for LiteRT counts in this run
        os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="bench-keras-")
    splits = catdog.from_directory(root, image_size=(size, size), batch_size=32)
    model = catdog.build_model(
        "transfer", input_shape=(size, size, 3), weights=str(weights), precision=precision
    )
    history = catdog.train(model, splits, epochs, verbose=0, **options)
    return model, history


def cli_defaults(root: Path, weights: Path, size: int, out: Path):
    """`catdog train --model transfer --data ROOT` (weights: the stand-in file)."""
    from catdog.runs.config import RunConfig
    from catdog.runs.job import run_training

    config = RunConfig(out=out, data=str(root), image_size=size, weights=str(weights), verbose=0)
    return run_training(config)


def test_accuracy(model, test_split) -> float:
    import numpy as np

    correct = total = 0
    for images, labels in test_split:
        predicted = model.predict(images, verbose=0).argmax(axis=1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(labels)
    return correct / total


def table_rows(results: dict) -> list[dict]:
    """One row per path (printed too), speed-ups against the post's recipe (key ``a``)."""
    reference = results.get("a")
    rows = []
    for key, (name, seconds, validation, test) in results.items():
        ratio = reference[1] / seconds if reference else None
        shown = f"{ratio:.2f}x" if ratio else "-"
        print(f"{name:<40}{seconds:>8.0f}s{shown:>9}  validation {validation:.3f}  test {test:.3f}")
        rows.append(
            {
                "key": key,
                "path": name,
                "seconds": round(seconds, 2),
                "speedup_vs_post": round(ratio, 3) if ratio else None,
                "validation_accuracy": round(float(validation), 4),
                "test_accuracy": round(float(test), 4),
            }
        )
    return rows


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="training images")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--scaling", default="", help="e.g. 1000,2000,4000")
    parser.add_argument("--scaling-epochs", type=int, help="epochs of the scaling runs")
    parser.add_argument(
        "--skip", default="", help="comma-separated paths to skip: a,b,c,c2,c3,c4,c5,d,e"
    )
    add_results_arguments(parser, "training")
    args = parser.parse_args()

    import keras
    import numpy as np
    from _common import machine, write_results

    import catdog

    skip = set(filter(None, args.skip.split(",")))
    size = args.size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def dataset(images: int) -> Path:
            return catdog.data.synthetic.make_synthetic_dataset(
                tmp / f"data{images}",
                images_per_class=images // 2,
                validation_per_class=images // 4,
                image_size=(size, size),
                mixed_sizes=True,
            )

        root = dataset(args.images)
        held_out = catdog.from_directory(root, image_size=(size, size), batch_size=32)
        sample = np.concatenate([x.numpy() for x, _ in held_out.train.take(2)])
        weights = catdog.models.weights.make_stand_in_weights(tmp / "base.weights.h5", sample)

        runs = {
            "a": (
                "post recipe (plain Keras)",
                lambda: post_recipe(root, weights, args.epochs, size),
            ),
            # the catdog paths: train() options on the same data, weights and epochs
            **{
                key: (
                    name,
                    lambda options=options: catdog_run(root, weights, args.epochs, size, **options),
                )
                for key, (name, options) in CATDOG_PATHS.items()
            },
        }
        results = {}
        if "e" not in skip:
            start = time.perf_counter()
            summary = cli_defaults(root, weights, size, tmp / "cli")
            results["e"] = (
                "catdog train CLI defaults",
                time.perf_counter() - start,
                max(summary["history"]["val_accuracy"]),
                summary["report"].accuracy,
            )
            print(f"{results['e'][0]}: {results['e'][1]:.0f}s, {results['e'][2:]}", flush=True)
        for key, (name, run) in runs.items():
            if key in skip:
                continue
            keras.utils.set_random_seed(0)
            start = time.perf_counter()
            model, history = run()
            seconds = time.perf_counter() - start
            results[key] = (
                name,
                seconds,
                history.history["val_accuracy"][-1],
                test_accuracy(model, held_out.test),
            )
            print(
                f"{name}: {seconds:.0f}s, validation {results[key][2]:.3f}, "
                f"test {results[key][3]:.3f}",
                flush=True,
            )

        scaling = []
        scaling_epochs = args.scaling_epochs or args.epochs
        for images in [int(n) for n in args.scaling.split(",") if n]:
            data = dataset(images)
            for key in ("b", "c"):
                options = CATDOG_PATHS[key][1]
                start = time.perf_counter()
                catdog_run(data, weights, scaling_epochs, size, **options)
                scaling.append((images, runs[key][0], time.perf_counter() - start))
                print(f"{images} images, {runs[key][0]}: {scaling[-1][2]:.0f}s", flush=True)

    results = dict(sorted(results.items()))  # the post's recipe first
    print(
        f"\nmachine: {machine()}; {args.images} train + {args.images // 2} validation "
        f"images at {size}x{size}, {args.epochs} epochs"
    )
    rows = table_rows(results)
    for images, name, seconds in scaling:
        print(f"scaling: {images} images, {name}: {seconds:.0f}s")
    notes = "; ".join(
        f"{name} with {images} train images: {seconds:.0f}s" for images, name, seconds in scaling
    )
    write_results(
        args,
        f"Training, transfer model, {args.images} train + {args.images // 2} validation "
        f"images, {size}x{size}, {args.epochs} epochs",
        rows,
        f"Scaling ({scaling_epochs} epochs): {notes}." if notes else "",
        extras={
            "scaling": [
                {"images": images, "path": name, "seconds": round(seconds, 2)}
                for images, name, seconds in scaling
            ]
        },
    )


if __name__ == "__main__":
    main()
