"""Inference speed and LiteRT exports: plain Keras, catdog's `Predictor`, TFLite variants.

Trains a transfer model's head (160x160, MobileNetV2 base with stand-in weights calibrated on
generated images; speed does not depend on the weights, agreement needs a trained head) and
measures, in one run, batch-1 latency (median over repeated calls) and batch-32 throughput of
`model.predict` (the tutorial's way), `model.predict_on_batch` and `model(x, training=False)`
(the fastest plain-Keras ways), catdog's `Predictor` on its TensorFlow and LiteRT engines,
`catdog.predict` on an array with the LiteRT engine, a raw LiteRT invoke (set_tensor, invoke,
get_tensor and nothing else), the LiteRT engine's one-off conversion, and the LiteRT export
quantized (float16, dynamic int8 weights), with each file's size and its top-1 agreement with
the Keras model on held-out generated images. Ratios are against `predict_on_batch`. Prints
the table and writes benchmarks/results/inference.json (`python benchmarks/render.py` then
updates the docs' tables).

    python benchmarks/bench_inference.py --repeats 50
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


def _trained_transfer_model(size: int):
    """A transfer model whose head learned generated images; and held-out images."""
    import numpy as np

    import catdog
    from catdog.data.synthetic import make_synthetic_dataset
    from catdog.models.weights import make_stand_in_weights

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_dataset(tmp, images_per_class=80, image_size=(size, size))
        splits = catdog.from_directory(root, image_size=(size, size), batch_size=32)
        images = np.concatenate([x.numpy() for x, _ in splits.train.take(2)])
        weights = make_stand_in_weights(Path(tmp) / "base.weights.h5", images)
        model = catdog.build_transfer_model(
            input_shape=(size, size, 3), weights=weights, class_names=splits.class_names
        )
        catdog.train(model, splits, 5, cache_features=True, verbose=0)
        held_out = np.concatenate(
            [x.numpy() for split in (splits.validation, splits.test) for x, _ in split]
        )
    return model, held_out


def table_rows(results: dict, sizes: dict, agreement: dict) -> list[dict]:
    """One row per path (printed too), ratios against ``model.predict_on_batch``."""
    base_latency, base_throughput = results["model.predict_on_batch"]
    rows = []
    for name, (latency, throughput) in results.items():
        rows.append(
            {
                "path": name,
                "batch1_ms": round(latency * 1000, 2),
                "batch1_vs_predict_on_batch": round(base_latency / latency, 3),
                "batch32_images_per_s": round(throughput, 1),
                "batch32_vs_predict_on_batch": round(throughput / base_throughput, 3),
                "file_mb": round(sizes[name], 3) if name in sizes else None,
                "top1_agreement": round(agreement[name], 4) if name in agreement else None,
            }
        )
        print("  ".join(f"{cell!s:>12}" for cell in rows[-1].values()))
    return rows


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--size", type=int, default=160)
    add_results_arguments(parser, "inference")
    args = parser.parse_args()

    import numpy as np
    from _common import machine, median_seconds, write_results

    import catdog
    from catdog.deploy.litert import LiteRTModel
    from catdog.deploy.predict import Predictor

    model, held_out = _trained_transfer_model(args.size)
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, args.size, args.size, 3)).astype(np.float32)
    batch = rng.uniform(0, 255, (32, args.size, args.size, 3)).astype(np.float32)
    predictor = Predictor(model)
    reference = model.predict(held_out, verbose=0).argmax(1)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        litert = Predictor(model, engine="litert", cache_dir=Path(tmp) / "cache")
        litert(one)
        conversion = time.perf_counter() - start
        start = time.perf_counter()
        Predictor(model, engine="litert", cache_dir=Path(tmp) / "cache")(one)
        cached = time.perf_counter() - start
        lite, sizes, agreement = {}, {}, {}
        for variant in ("float16", "dynamic"):
            name = f"LiteRT export, {variant}"
            path = catdog.export(
                model, Path(tmp) / f"{variant}.tflite", format="litert", quantize=variant
            )
            lite[name] = LiteRTModel(path)
            sizes[name] = path.stat().st_size / 1e6
            agreement[name] = float((lite[name](held_out).argmax(1) == reference).mean())
        agreement["catdog LiteRT engine"] = float((litert(held_out).argmax(1) == reference).mean())
        np.testing.assert_allclose(litert(batch), model.predict(batch, verbose=0), atol=1e-4)
        np.testing.assert_allclose(predictor(batch), model.predict(batch, verbose=0), atol=1e-5)
        raw = LiteRTModel(catdog.deploy.litert.cached_litert_file(model, Path(tmp) / "cache"))
        interpreter, index = raw._interpreter, raw._input["index"]
        output = raw._output["index"]

        shape = [None]

        def raw_invoke(x):
            if shape[0] != x.shape:  # resize once per batch size, as any caller would
                interpreter.resize_tensor_input(index, x.shape)
                interpreter.allocate_tensors()
                shape[0] = x.shape
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        paths = {
            "model.predict": lambda x: model.predict(x, verbose=0),
            "model.predict_on_batch": model.predict_on_batch,
            "model(x, training=False)": lambda x: model(x, training=False),
            "catdog TensorFlow engine": predictor,
            "catdog LiteRT engine": litert,
            "catdog.predict, LiteRT engine": lambda x: catdog.predict(model, x, engine="litert"),
            "raw LiteRT invoke": raw_invoke,
            **lite,
        }
        results = {}
        for name, fn in paths.items():
            latency = median_seconds(lambda fn=fn: fn(one), args.repeats)
            per_batch = median_seconds(lambda fn=fn: fn(batch), max(5, args.repeats // 5))
            results[name] = (latency, 32 / per_batch)

    print(f"machine: {machine()}")
    print(f"LiteRT conversion: {conversion:.1f} s; from the cache: {cached:.2f} s")
    rows = table_rows(results, sizes, agreement)
    write_results(
        args,
        f"Inference, transfer model {args.size}x{args.size}",
        rows,
        notes=f"Top-1 agreement with the Keras model on {len(held_out)} held-out generated "
        "images. Speed-ups are against `predict_on_batch`, the fastest plain-Keras path. "
        f"The LiteRT engine's conversion took {conversion:.1f} s once (export, convert, "
        f"write to the cache); a new Predictor on the cached file took {cached:.2f} s.",
        extras={
            "held_out_images": len(held_out),
            "conversion_s": round(conversion, 2),
            "cached_load_s": round(cached, 3),
        },
    )


if __name__ == "__main__":
    main()
