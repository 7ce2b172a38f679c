"""Prediction on Ray Data: images/s of `catdog.deploy.ray_data` with 1 and 2 local workers.

Builds the transfer model at 160x160 (MobileNetV2 base, weights=None: speed does not depend on
the weights), writes --files JPEGs of 240-640 px (about 400 px), starts a local Ray cluster
(`ray.init(num_cpus=--cpus)`: its workers are separate processes) and measures, alternating the
order in each round, the wall time from the image list to a written predictions file of:

- `catdog predict`'s own path in this process (`write_predictions(iter_predictions(...))`);
- `predict_dataset(image_dataset(paths), model, workers=N)` then `write_dataset_rows`, for each
  N of --workers: a fresh pool of N worker processes each time, each loading the model and the
  LiteRT file from its cache (the first round converts it), included in the time; and the
  rate from the first row's arrival to the last: the workers' once they run.

Every engine is LiteRT. Needs the ray extra (`pip install ".[ray]"`). Prints the table and
writes benchmarks/results/distributed_predict.json (`python benchmarks/render.py` then updates
the docs' tables).

    python benchmarks/bench_distributed_predict.py --files 1000 --rounds 3
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

IN_PROCESS = "`catdog predict` path, one process (no Ray)"


class Timed:
    """A Ray Dataset whose ``iter_rows`` notes when its first and last rows came: the rate in
    between is the workers' once they run (their start and the model's loading left out)."""

    def __init__(self, dataset):
        self.dataset, self.first, self.last, self.rows = dataset, None, None, 0

    def iter_rows(self):
        for row in self.dataset.iter_rows():
            self.last = time.perf_counter()
            self.first = self.first or self.last
            self.rows += 1
            yield row

    def rate(self) -> float:
        """Images/s from the first row to the last (the first row's batch not counted)."""
        return (self.rows - BATCH) / max(self.last - self.first, 1e-9)


BATCH = 32  # catdog's batch size: the first row comes with a whole batch


def _runs(args, model: Path, paths: list[str], out: Path) -> dict:
    """The functions to time, by row name: each writes every image's row to a fresh file."""
    from catdog.deploy.predict import Predictor, iter_predictions
    from catdog.deploy.prediction_files import prediction_model, write_predictions
    from catdog.deploy.ray_data import image_dataset, predict_dataset, write_dataset_rows

    def in_process() -> None:
        keras_model, names = prediction_model(model)
        predictions = iter_predictions(Predictor(keras_model, engine="litert"), paths, names)
        write_predictions(predictions, out, overwrite=True)

    def on_ray(workers: int):
        def run() -> float:
            blocks = max(workers * 4, len(paths) // BATCH)  # one batch a block: rows stream
            dataset = image_dataset(paths, blocks=blocks)
            rows = Timed(predict_dataset(dataset, model, workers=workers, engine="litert"))
            write_dataset_rows(rows, out, overwrite=True)
            return rows.rate()

        return run

    runs = {IN_PROCESS: in_process}
    for workers in args.workers:
        runs[f"Ray Data, {workers} worker{'s' if workers > 1 else ''}"] = on_ray(workers)
    return runs


def _measure(args, tmp: Path) -> tuple[dict, dict, int, float]:
    """``(seconds of every round by row name, images/s once the workers run by row name, files,
    seconds ray.init took)``."""
    import catdog
    from catdog.data.files import image_files
    from catdog.deploy.ray_data import require_ray

    root = catdog.data.synthetic.make_synthetic_dataset(
        tmp / "data", images_per_class=args.files // 2, image_size=(400, 400),
        validation_per_class=1, mixed_sizes=True, seed=0,
    )  # fmt: skip
    paths = image_files([root / "train"])
    built = catdog.build_transfer_model(
        input_shape=(160, 160, 3), weights=None, class_names=["cats", "dogs"]
    )
    model = catdog.export(built, tmp / "model.keras")
    start = time.perf_counter()
    require_ray().init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start
    runs = _runs(args, model, paths, tmp / "predictions.csv")
    times: dict[str, list[float]] = {name: [] for name in runs}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm up: the LiteRT conversion, the file cache
        run()
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            start = time.perf_counter()
            rate = runs[name]()
            times[name].append(time.perf_counter() - start)
            rates[name] += [] if rate is None else [rate]
    return times, rates, len(paths), started


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="JPEG files written")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray cluster's CPUs")
    parser.add_argument(
        "--workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2],
        help="comma-separated worker counts",
    )  # fmt: skip
    add_results_arguments(parser, "distributed_predict")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other work on the machine distorts the figures
    tmp = tempfile.TemporaryDirectory()
    os.environ["KERAS_HOME"] = str(Path(tmp.name) / "keras")  # one LiteRT cache for all
    try:
        times, rates, files, started = _measure(args, Path(tmp.name))
    finally:
        tmp.cleanup()
    _report(args, times, rates, files, started, (load, os.getloadavg()[0]))


def _report(args, times: dict, rates: dict, files: int, started: float, load: tuple) -> None:
    from _common import machine, write_results

    seconds = {name: statistics.median(values) for name, values in times.items()}
    one = next(name for name in seconds if name.endswith(" 1 worker"))
    rows = []
    for name, s in seconds.items():
        row = {
            "path": name,
            "images": files,
            "seconds": round(s, 2),
            "images_per_s": round(files / s, 1),
            "vs_one_worker": round(seconds[one] / s, 3),
        }
        if rates[name]:  # the workers' rate once they run
            row["images_per_s_running"] = round(statistics.median(rates[name]), 1)
        rows.append(row)
    print(f"machine: {machine()}")
    for row in rows:
        print("  ".join(f"{cell!s:>12}" for cell in row.values()))
    write_results(
        args,
        "Prediction on Ray Data, transfer model 160x160, LiteRT engine, local cluster",
        rows,
        notes=f"{files:,} JPEGs of 240-640 px (generated, about 400 px), median of "
        f"{args.rounds} rounds. Each Ray row starts a fresh pool of worker processes that load "
        f"the model (its time is included); starting the local cluster (`ray.init`, "
        f"{started:.1f} s) is not. `vs 1 worker` is the 1-worker row's time over the row's. "
        "`images/s once running` counts from the first row's arrival to the last (the first "
        f"batch of {BATCH} left out): the workers' rate, their start and the model's loading "
        "left out. "
        f"Load average (1 minute) at the start and the end of the run: {load[0]:.1f} and "
        f"{load[1]:.1f} ({os.cpu_count()} cores, shared with other work).",
        extras={"ray_init_seconds": round(started, 2), "load_average": [round(x, 2) for x in load]},
    )


if __name__ == "__main__":
    main()
