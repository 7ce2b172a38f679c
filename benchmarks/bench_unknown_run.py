"""The unknown answer as a user gets it: `catdog train` with its defaults, then `catdog.predict`
on real photos it never saw, in one run.

Not run in CI: it needs the real photos and the real pretrained MobileNetV2@160 base (setup in
bench_real.py's docstring) and real photos of neither class (bench_unknown.py's docstring).
The training folder holds only the class folders of `cats_and_dogs_filtered/train` (1,999
photos: catdog splits them 60/20/20 itself); the 1,000 photos of its `validation/` folder are
the held-out cats and dogs, never seen by training or by any choice. Then:

    mkdir cdf_train && ln -s "$PWD/cats_and_dogs_filtered/train/"{cats,dogs} cdf_train/
    python benchmarks/bench_unknown_run.py --train cdf_train \
        --held-out cats_and_dogs_filtered/validation \
        --weights mobilenet_v2_160_base.weights.h5 \
        --foreign pandas=panda --foreign horses=weizmann_horse_db/rgb

Rows: the share of each set answered `unknown` (95% Wilson interval), and for the held-out
cats and dogs the accuracy on the photos answered with a class. Results:
benchmarks/results/unknown_run.json (and printed).
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

from _common import add_results_arguments, write_results  # noqa: E402


def photos(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def share_row(name: str, predictions, truth: list[str] | None = None) -> dict:
    """The share answered unknown (with its interval) and, given the true classes, the
    accuracy on the photos answered with a class."""
    from catdog.report.evaluation import wilson_interval

    unknown = sum(p.unknown for p in predictions)
    row = {
        "set": name,
        "photos": len(predictions),
        "unknown": unknown,
        "share": unknown / len(predictions),
        "interval": list(wilson_interval(unknown, len(predictions))),
    }
    if truth is not None:
        answered = [(p, t) for p, t in zip(predictions, truth, strict=True) if not p.unknown]
        right = sum(p.class_name == t for p, t in answered)
        row.update(accepted_accuracy=right / len(answered), accepted=len(answered))
        row["accepted_interval"] = list(wilson_interval(right, len(answered)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="folder of class folders")
    parser.add_argument("--held-out", type=Path, required=True, help="held-out class folders")
    parser.add_argument("--weights", type=Path, required=True, help="the base's weights file")
    parser.add_argument(
        "--foreign", action="append", default=[], metavar="NAME=DIR", help="foreign photos"
    )
    add_results_arguments(parser, "unknown_run")
    args = parser.parse_args()

    from catdog import load_model, predict
    from catdog.runs.config import RunConfig
    from catdog.runs.job import run_training

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        config = RunConfig(out=Path(tmp) / "run", data=str(args.train), weights=str(args.weights))
        run_training(config)
        seconds = time.perf_counter() - start
        model = load_model(Path(tmp) / "run" / "model.keras")
    held_out = photos(args.held_out)
    truth = [Path(p).parent.name for p in held_out]
    rows = [share_row("held-out cats and dogs", predict(model, held_out), truth)]
    for spec in args.foreign:
        name, folder = spec.split("=", 1)
        rows.append(share_row(name, predict(model, photos(Path(folder)))))
    for row in rows:
        low, high = row["interval"]
        print(f"{row['set']:<24} {row['share']:.1%} unknown ({low:.1%}-{high:.1%})")
    found = model.get_layer("confidence").describe()
    write_results(
        args,
        "The unknown answer of `catdog train` with its defaults, on real photos it never saw",
        rows,
        notes=(
            f"`catdog train` ({seconds:.0f} s) on {args.train.name}; the unknown answer: "
            f"{found['method']} score > {found['threshold']:.4f}, asked coverage "
            f"{found['coverage']:.0%}. Accuracy on the held-out photos answered with a class: "
            f"{rows[0]['accepted_accuracy']:.1%} ({rows[0]['accepted']} photos, "
            f"{rows[0]['accepted_interval'][0]:.1%}-{rows[0]['accepted_interval'][1]:.1%})."
        ),
        extras={"train_seconds": seconds, "confidence": found},
    )


if __name__ == "__main__":
    main()
