"""The data audit beside a training run on the same photos, in one run.

Not run in CI: like bench_real.py it needs the real `cats_and_dogs_filtered` photos and a real
pretrained MobileNetV2@160 base (setup in bench_real.py's docstring). Then:

    python benchmarks/bench_audit.py --data cats_and_dogs_filtered \
        --weights mobilenet_v2_160_base.weights.h5

Row `audit` is `catdog.audit(DATA)` (every image of every split through the base once, a
5-fold logistic-regression head, cleanlab's checks, and the report written with its thumbnail
grids); row `train` is `catdog train` with its defaults on the same folder (cached features,
evaluation, figures, model card). Both go through the same base weights and the same engine
choice. The counts of what the audit flagged are in the results file
(benchmarks/results/audit.json, and printed); what the flagged photos show takes a person's
look at the report (see docs/guide/audit.md).
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


def audit_row(data: Path, weights: Path, out: Path) -> tuple[float, dict]:
    """Seconds of ``catdog.audit`` with its report written, and what it flagged."""
    from catdog import audit

    start = time.perf_counter()
    report = audit(data, weights=str(weights))
    report.save(out)
    seconds = time.perf_counter() - start
    counts = {
        "images": sum(report.to_dict()["counts"].values()),
        "out_of_fold_accuracy": round(report.settings["accuracy"], 4),
        "label_issues": len(report.label_issues),
        "near_duplicate_groups": len(report.near_duplicates),
        "leaks": len(report.leaks),
        "outliers": len(report.outliers),
        "suggested_exclusions": len(report.exclude()),
    }
    return seconds, counts


def train_row(data: Path, weights: Path, out: Path) -> float:
    """Seconds of ``catdog train`` with its defaults on ``data``."""
    from catdog.runs.config import RunConfig
    from catdog.runs.job import run_training

    start = time.perf_counter()
    run_training(RunConfig(out=out, data=str(data), weights=str(weights), verbose=0))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an image folder")
    parser.add_argument("--weights", type=Path, required=True, help="MobileNetV2@160 base")
    add_results_arguments(parser, "audit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KERAS_HOME", str(Path(tmp) / "keras"))  # both convert anew
        audit_seconds, counts = audit_row(args.data, args.weights, Path(tmp) / "audit")
        train_seconds = train_row(args.data, args.weights, Path(tmp) / "run")
    rows = [
        {
            "key": "audit",
            "path": "catdog audit (report included)",
            "seconds": round(audit_seconds, 1),
        },
        {"key": "train", "path": "catdog train, its defaults", "seconds": round(train_seconds, 1)},
    ]
    for row in rows:
        row["vs_train"] = round(row["seconds"] / train_seconds, 2)
        print(f"{row['path']:<36}{row['seconds']:>7.0f} s{row['vs_train']:>7.2f}x", flush=True)
    print(counts)
    title = f"The data audit beside a training run, {args.data.name}"
    write_results(args, title, rows, extras={"flagged": counts})


if __name__ == "__main__":
    main()
