"""The backbone zoo on this CPU: size, speed and published accuracy, to choose a backbone by.

For every backbone (or those named with --backbones), at its default (ImageNet) input size,
with the default two-class head: parameters, frozen-feature extraction throughput (images/s at
batch 32, what `train(cache_features=True)` spends its time on), batch-1 latency through
catdog's `Predictor` next to plain Keras' `model.predict_on_batch` (the fastest plain-Keras
call; the tutorial's `model.predict` is slower still) with their ratio, and the ImageNet top-1
accuracy published for the Keras weights. Random weights: speed does not depend on them.
Prints the table and writes benchmarks/results/backbones.json, from which
`python benchmarks/render.py` makes the tables of the benchmarks page and the models guide.

    python benchmarks/bench_backbones.py                      # all 40, about 25 minutes
    python benchmarks/bench_backbones.py --backbones mobilenet_v2,efficientnet_b0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))


def measure(name: str, batch_repeats: int, single_repeats: int) -> dict:
    """One table row: the backbone's figures."""
    import keras
    import numpy as np
    import tensorflow as tf
    from _common import median_seconds

    from catdog.deploy.predict import Predictor
    from catdog.models.backbones import get_backbone
    from catdog.models.registry import build_model
    from catdog.training.feature_cache import split_transfer_model

    spec = get_backbone(name)
    model = build_model(name, weights=None)
    side = spec.input_size
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (32, side, side, 3)).astype("float32")
    single = batch[:1]
    extractor, _ = split_transfer_model(model)
    extract = tf.function(lambda x: extractor(x, training=False))
    per_batch = median_seconds(lambda: extract(batch).numpy(), batch_repeats)
    predictor = Predictor(model)
    ours = median_seconds(lambda: predictor(single), single_repeats)
    plain = median_seconds(lambda: model.predict_on_batch(single), single_repeats)
    keras.backend.clear_session()
    return {
        "backbone": name,
        "input": side,
        "parameters_millions": round(model.count_params() / 1e6, 2),
        "features_per_s": round(32 / per_batch, 1),
        "predictor_ms": round(ours * 1000, 2),
        "predict_on_batch_ms": round(plain * 1000, 2),
        "ratio": round(plain / ours, 3),
        "imagenet_top1": spec.top1,
    }


def main() -> None:
    from _common import add_results_arguments, write_results

    from catdog.models.backbones import BACKBONES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", help="comma-separated names (default: all)")
    parser.add_argument("--batch-repeats", type=int, default=3)
    parser.add_argument("--single-repeats", type=int, default=10)
    add_results_arguments(parser, "backbones")
    args = parser.parse_args()
    names = args.backbones.split(",") if args.backbones else list(BACKBONES)
    rows = []
    for name in names:
        rows.append(measure(name, args.batch_repeats, args.single_repeats))
        print(rows[-1], flush=True)
    write_results(
        args,
        "Backbones: size, speed, accuracy",
        rows,
        f"Measured here: {len(rows)} of {len(BACKBONES)} backbones, each at its ImageNet input "
        "size with the default two-class head, random weights (speed does not depend on them), "
        "float32. features/s: the frozen base and pooling at batch 32, what cached-feature "
        "training spends its time on. Batch-1 latency: median of repeated calls; ratio = "
        "predict_on_batch / Predictor (TensorFlow engine). Top-1: the Keras Applications table "
        "(MobileNetV3: its Keras docstring); `catdog models` lists every backbone's.",
    )


if __name__ == "__main__":
    main()
