"""Inference speed: Keras `model.predict`, catdog's `Predictor`, and TFLite.

Builds the transfer model (160x160, MobileNetV2 base, weights=None: speed does not depend on
the weights) and measures, in one run, batch-1 latency (median over repeated calls) and
batch-32 throughput of (a) `model.predict` as in the post, (b) `catdog.inference.Predictor`
(one traced function, no augmentation layers), (c) the TFLite export via `tf.lite.Interpreter`.
Prints the ratios and appends them to benchmarks/README.md.

    python benchmarks/bench_inference.py --repeats 50
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


def _timed(fn, repeats: int) -> float:
    fn()  # warm up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--no-append", action="store_true", help="do not write README.md")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from _common import append_results, machine

    import catdog
    from catdog.inference import Predictor

    model = catdog.build_transfer_model(input_shape=(args.size, args.size, 3), weights=None)
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, args.size, args.size, 3)).astype(np.float32)
    batch = rng.uniform(0, 255, (32, args.size, args.size, 3)).astype(np.float32)
    predictor = Predictor(model)

    with tempfile.TemporaryDirectory() as tmp:
        path = catdog.export(model, Path(tmp) / "m.tflite", format="tflite")
        interpreters = {}
        for n in (1, 32):
            interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=os.cpu_count())
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, (n, args.size, args.size, 3))
            interpreter.allocate_tensors()
            interpreters[n] = (interpreter, index)

        def tflite(images):
            interpreter, index = interpreters[len(images)]
            interpreter.set_tensor(index, images)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

        np.testing.assert_allclose(tflite(batch), model.predict(batch, verbose=0), atol=1e-4)
        np.testing.assert_allclose(predictor(batch), model.predict(batch, verbose=0), atol=1e-5)
        paths = {
            "model.predict": lambda x: model.predict(x, verbose=0),
            "catdog Predictor": predictor,
            "TFLite": tflite,
        }
        results = {}
        for name, fn in paths.items():
            latency = _timed(lambda fn=fn: fn(one), args.repeats)
            per_batch = _timed(lambda fn=fn: fn(batch), max(5, args.repeats // 5))
            results[name] = (latency, 32 / per_batch)

    base_latency, base_throughput = results["model.predict"]
    print(f"machine: {machine()}")
    print(
        f"{'path':<18}{'batch-1 ms':>12}{'x vs predict':>14}{'batch-32 img/s':>16}"
        f"{'x vs predict':>14}"
    )
    rows = []
    for name, (latency, throughput) in results.items():
        print(
            f"{name:<18}{latency * 1000:>12.1f}{base_latency / latency:>13.2f}x"
            f"{throughput:>16.0f}{throughput / base_throughput:>13.2f}x"
        )
        rows.append(
            [
                name,
                f"{latency * 1000:.1f}",
                f"{base_latency / latency:.2f}x",
                f"{throughput:.0f}",
                f"{throughput / base_throughput:.2f}x",
            ]
        )
    if not args.no_append:
        append_results(
            f"Inference, transfer model {args.size}x{args.size}",
            ["path", "batch-1 latency (ms)", "vs predict", "batch-32 images/s", "vs predict"],
            rows,
        )


if __name__ == "__main__":
    main()
