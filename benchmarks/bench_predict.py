"""Prediction at the engine's speed: `catdog.predict` on JPEG files against the engine alone.

Builds the transfer model at 160x160 (MobileNetV2 base, weights=None: speed does not depend
on the weights), writes --files JPEGs of 240-640 px (about 400 px, like the photos of
cats_and_dogs_filtered) and measures, in one run, alternating the paths in each round:

- the LiteRT engine alone (`Predictor(engine="litert")`) on an in-memory float32 array, in
  batches of 32: the speed to match;
- the decoding alone (`image_batches`: read, decode, resize, in parallel): where the rest of
  the time goes;
- `catdog.predict(model, paths, engine="litert")` on the files, decoding included;

then `catdog predict MODEL FOLDER... --output predictions.csv` in a fresh process on 1,000 and
on 20,000 images (the folder of --files images given several times), with the process's peak
resident memory (`ru_maxrss`) and wall time (loading the model included). Prints the table and
writes benchmarks/results/predict.json (`python benchmarks/render.py` then updates the docs'
tables).

    python benchmarks/bench_predict.py --files 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

ENGINE = "LiteRT engine alone, in-memory array"
ARRAY_IMAGES = 512

MEASURE = """
import resource, sys, time
from catdog.cli import main
start = time.perf_counter()
status = main(sys.argv[1:])
print("measured", status, time.perf_counter() - start,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory(model: Path, folder: Path, repeats: int, out: Path) -> tuple[float, float]:
    """``(seconds, peak MB)`` of ``catdog predict`` on ``folder`` given ``repeats`` times,
    in a fresh process."""
    argv = ["predict", str(model), *[str(folder)] * repeats, "--output", str(out)]
    argv += ["--engine", "litert"]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, check=False
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("measured")]
    if done.returncode or not line or line[0].split()[1] != "0":
        raise SystemExit(f"catdog predict failed:\n{done.stderr[-3000:]}")
    _, _, seconds, megabytes = line[0].split()
    return float(seconds), float(megabytes)


def _rates(args, model, paths, array) -> dict[str, float]:
    """Median images/s of the engine, the decoding and ``catdog.predict``, over rounds."""
    import catdog
    from catdog.data.images import image_batches
    from catdog.deploy.predict import Predictor

    engine = Predictor(model, engine="litert")
    paths_to_run = {
        ENGINE: lambda: engine(array, batch_size=32),
        "decoding alone (image_batches)": lambda: sum(1 for _ in image_batches(paths, (160, 160))),
        "catdog.predict on the files, LiteRT engine": lambda: catdog.predict(engine, paths),
    }
    counts = {name: len(paths) for name in paths_to_run} | {ENGINE: len(array)}
    times: dict[str, list[float]] = {name: [] for name in paths_to_run}
    for fn in paths_to_run.values():
        fn()  # warm up: tracing, conversion, the file cache
    for round_ in range(args.rounds):
        order = list(paths_to_run) if round_ % 2 == 0 else list(reversed(paths_to_run))
        for name in order:
            start = time.perf_counter()
            paths_to_run[name]()
            times[name].append(time.perf_counter() - start)
    return {name: counts[name] / statistics.median(times[name]) for name in paths_to_run}


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="JPEG files written")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--memory-images",
        default="1000,20000",
        help="comma-separated image counts of the fresh-process runs (multiples of --files)",
    )
    add_results_arguments(parser, "predict")
    args = parser.parse_args()

    load = os.getloadavg()[0]  # other work on the machine distorts the figures
    tmp = tempfile.TemporaryDirectory()
    os.environ["KERAS_HOME"] = str(Path(tmp.name) / "keras")  # one LiteRT cache for all
    try:
        rates, memory, files = _measure(args, Path(tmp.name))
    finally:
        tmp.cleanup()
    _report(args, rates, memory, files, (load, os.getloadavg()[0]))


def _measure(args, tmp: Path):
    """``(images/s of each path, {count: (seconds, peak MB)}, files written)``."""
    import numpy as np

    import catdog
    from catdog.data.files import image_files

    root = catdog.data.synthetic.make_synthetic_dataset(
        tmp / "data",
        images_per_class=args.files // 2,
        image_size=(400, 400),
        validation_per_class=1,
        mixed_sizes=True,
        seed=0,
    )
    folder = root / "train"
    paths = image_files([folder])
    built = catdog.build_transfer_model(
        input_shape=(160, 160, 3), weights=None, class_names=["cats", "dogs"]
    )
    saved = catdog.export(built, tmp / "model.keras")
    model = catdog.load_model(saved)  # as the fresh processes load it: one LiteRT conversion
    shape = (ARRAY_IMAGES, 160, 160, 3)
    array = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    rates = _rates(args, model, paths, array)
    counts = [int(n) for n in args.memory_images.split(",") if n]
    memory = {
        max(1, n // len(paths)) * len(paths): peak_memory(
            saved, folder, max(1, n // len(paths)), tmp / f"p{n}.csv"
        )
        for n in counts
    }
    return rates, memory, len(paths)


def _report(args, rates: dict, memory: dict, files: int, load: tuple) -> None:
    from _common import machine, write_results

    engine = rates[ENGINE]
    rows = [
        {"path": name, "images": ARRAY_IMAGES if name == ENGINE else files,
         "images_per_s": round(rate, 1), "engine_vs_this": round(engine / rate, 3)}
        for name, rate in rates.items()
    ]  # fmt: skip
    for images, (seconds, megabytes) in memory.items():
        rows.append(
            {
                "path": "`catdog predict --output`, fresh process",
                "images": images,
                "images_per_s": round(images / seconds, 1),
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(megabytes),
            }
        )
    print(f"machine: {machine()}")
    for row in rows:
        print("  ".join(f"{cell!s:>12}" for cell in row.values()))
    ratio = engine / rates["catdog.predict on the files, LiteRT engine"]
    print(f"engine / end to end: {ratio:.2f}x (target: within 1.5x)")
    write_results(
        args,
        "Prediction, transfer model 160x160, LiteRT engine, batches of 32",
        rows,
        notes=f"{files:,} JPEGs of 240-640 px (generated, about 400 px). "
        "`engine / this` is the engine's images/s over the row's: 1.00x is the engine's speed. "
        "The fresh-process rows include loading the model and the LiteRT file from its cache, "
        "and give the folder of files several times for the larger count; their peak memory "
        f"is the whole process's (`ru_maxrss`). Load average (1 minute) at the start and the "
        f"end of the run: {load[0]:.1f} and {load[1]:.1f} ({os.cpu_count()} cores).",
        extras={"engine_vs_predict": round(ratio, 3), "load_average": [round(x, 2) for x in load]},
    )


if __name__ == "__main__":
    main()
