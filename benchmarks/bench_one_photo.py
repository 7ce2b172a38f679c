"""One photo, fast: the wall time of a new process that predicts one photo, hyperfine-style.

Builds the transfer model at 160x160 (MobileNetV2 base, weights=None: speed does not depend
on the weights), saves it as `.keras`, exports it to `.tflite`, writes one JPEG of 400x300
px, then times --runs new processes (after one warm-up, which fills the disk cache) of:

- `python -c "import ai_edge_litert.interpreter"`: the floor, LiteRT's interpreter alone;
- `python -m catdog predict model.tflite photo.jpg`: no TensorFlow, no Keras imported;
- `python -m catdog predict model.keras photo.jpg`: TensorFlow and Keras, for comparison;

with their median, min and max, beside what the process spends on the photo itself: the
LiteRT engine's batch-1 latency and the Pillow decode, measured in this process (median of
--calls calls). Prints the table and writes benchmarks/results/one_photo.json
(`python benchmarks/render.py` then updates the docs' table).

    python benchmarks/bench_one_photo.py --runs 7
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

GOAL_S = 0.5  # the .tflite command's median, on a 2-core CPU


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` new processes running ``argv`` (after one warm-up run)."""
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
        if run:  # the first run warms the disk cache
            times.append(elapsed)
    return times


def in_process_ms(model: Path, photo: Path, calls: int) -> dict[str, float]:
    """Median milliseconds of the LiteRT engine on one image and of Pillow's decode."""
    import numpy as np

    from catdog.data.pillow_decode import pillow_pixels
    from catdog.deploy.litert import LiteRTModel

    lite = LiteRTModel(model)
    size = lite.input_shape[1:3]
    batch = pillow_pixels(photo, size)[None].astype(np.float32)
    found = {}
    for name, fn in {
        "engine": lambda: lite(batch, batch_size=1),
        "decode": lambda: pillow_pixels(photo, size),
    }.items():
        fn()  # warm up: tensor allocation
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        found[name] = 1000 * statistics.median(times)
    return found


def _files(tmp: Path) -> tuple[Path, Path, Path]:
    """``(model.keras, model.tflite, photo.jpg)``, written under ``tmp``."""
    import numpy as np
    from PIL import Image

    import catdog

    built = catdog.build_transfer_model(
        input_shape=(160, 160, 3), weights=None, class_names=["cats", "dogs"]
    )
    keras_file = catdog.export(built, tmp / "model.keras")
    tflite = catdog.export(built, tmp / "model.tflite", format="litert")
    coarse = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    photo = tmp / "photo.jpg"
    Image.fromarray(coarse).resize((400, 300), Image.BICUBIC).save(photo, quality=90)
    return keras_file, tflite, photo


def measure(args, tmp: Path) -> list[dict]:
    """One row per command, then the in-process figures."""
    keras_file, tflite, photo = _files(tmp)
    python = [sys.executable]
    commands = {
        "`python -c 'import ai_edge_litert.interpreter'` (floor)": [
            *python, "-c", "import ai_edge_litert.interpreter"
        ],
        "`catdog predict model.tflite photo.jpg`": [
            *python, "-m", "catdog", "predict", str(tflite), str(photo)
        ],
        "`catdog predict model.keras photo.jpg`": [
            *python, "-m", "catdog", "predict", str(keras_file), str(photo)
        ],
    }  # fmt: skip
    rows = []
    for name, argv in commands.items():
        times = wall_times(argv, args.runs)
        rows.append(
            {"path": name, "runs": args.runs, "median_s": round(statistics.median(times), 3),
             "min_s": round(min(times), 3), "max_s": round(max(times), 3)}
        )  # fmt: skip
        print(f"{name}: median {statistics.median(times):.3f} s", flush=True)
    inside = in_process_ms(tflite, photo, args.calls)
    rows.append({"path": "LiteRT engine, batch of 1, in process", "median_ms": inside["engine"]})
    rows.append({"path": "Pillow decode of the photo, in process", "median_ms": inside["decode"]})
    for row in rows[-2:]:
        row["median_ms"] = round(row["median_ms"], 2)
    return rows


def main() -> None:
    from _common import add_results_arguments, machine, write_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed processes per command")
    parser.add_argument("--calls", type=int, default=50, help="timed in-process calls")
    add_results_arguments(parser, "one_photo")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KERAS_HOME"] = str(Path(tmp) / "keras")
        rows = measure(args, Path(tmp))
    tflite = rows[1]["median_s"]
    print(f"machine: {machine()}")
    print(f".tflite: {tflite:.3f} s (goal: under {GOAL_S} s)")
    write_results(
        args,
        "One photo in a new process, transfer model 160x160",
        rows,
        notes=f"Wall time of {args.runs} new processes per command (after one warm-up run), "
        "Python start-up, imports, loading the model, decoding the photo (a 400x300 JPEG) and "
        "printing its line included; the `.tflite` command imports neither TensorFlow nor "
        "Keras. The in-process rows are medians of "
        f"{args.calls} calls. Goal for the `.tflite` command: under {GOAL_S} s. Load average "
        f"(1 minute) at the start and the end of the run: {load:.1f} and "
        f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} cores).",
        extras={"goal_s": GOAL_S, "tflite_vs_floor": round(tflite / rows[0]["median_s"], 2)},
    )


if __name__ == "__main__":
    main()
