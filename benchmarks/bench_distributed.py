"""Training throughput on one and on two workers of a multi-worker cluster, on this machine.

In one run, on one generated dataset, trains the tutorial's model B (the CNN behind RandomFlip
and RandomRotation(0.2), ``build_model("augmented")``) for the same epochs, and reports the
training images per second (images x epochs / wall time of the fit, validation included) of:

(a) the tutorial's plain Keras recipe: ``image_dataset_from_directory`` and ``model.fit``, in
    one process, no strategy;
(b) catdog's ``train`` in one process, no strategy;
(c) catdog's ``train`` under ``--strategy multi_worker`` with a cluster of one worker;
(d) the same with two workers on 127.0.0.1 (each worker trains on half of every batch and the
    gradients are all-reduced over gRPC after each step).

Every worker is a separate process started with its own ``TF_CONFIG``. On a 2-core machine two
workers share the same two cores, so no speedup is expected: the point is that the cluster
trains correctly and what its overhead is. On separate machines each worker brings its own
cores. Results are printed and written to benchmarks/results/distributed.json.

    python benchmarks/bench_distributed.py --images 800 --size 96 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))


def run_worker(mode: str, root: str, size: int, epochs: int, batch: int) -> dict:
    """Train once in this process; return the fit's seconds and the training images."""
    strategy = None
    if mode == "multi_worker":
        from catdog.training.distribute import make_strategy

        strategy = make_strategy("multi_worker")  # first, before any other TensorFlow op
    import keras

    from catdog.data.pipelines import from_directory
    from catdog.models.classifier import compile_model
    from catdog.models.registry import build_model
    from catdog.training.distribute import strategy_scope

    keras.utils.set_random_seed(0)
    if mode == "keras":  # the tutorial's pipeline and a plain fit
        train_ds = keras.utils.image_dataset_from_directory(
            Path(root) / "train", batch_size=batch, image_size=(size, size), verbose=False
        )
        val_ds = keras.utils.image_dataset_from_directory(
            Path(root) / "validation", batch_size=batch, image_size=(size, size), verbose=False
        )
        images = sum(1 for _ in Path(root, "train").rglob("*.jpg"))
        model = compile_model(build_model("augmented", input_shape=(size, size, 3)), 1e-3)
        start = time.perf_counter()
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0)
        return {"seconds": time.perf_counter() - start, "images": images}
    from catdog.training.fit import train

    splits = from_directory(root, image_size=(size, size), batch_size=batch, seed=0)
    for _ in splits.train:  # decode and cache once, as every catdog run does before fitting
        pass
    for _ in splits.validation:
        pass
    with strategy_scope(strategy):
        model = build_model("augmented", input_shape=(size, size, 3))
    start = time.perf_counter()
    history = train(model, splits, epochs, strategy=strategy, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "images": len(splits.files["train"]),
        "val_accuracy": history.history["val_accuracy"][-1],
    }


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(mode: str, workers: int, args) -> dict:
    """Run ``workers`` processes of ``mode``; the slowest worker's time counts."""
    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        if mode == "multi_worker":
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            task = {"type": "worker", "index": index}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        command = [sys.executable, __file__, "--worker", mode, "--root", str(args.root)]
        command += ["--size", str(args.size), "--epochs", str(args.epochs)]
        command += ["--batch-size", str(args.batch_size)]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=1800)
        if process.returncode:
            raise SystemExit(f"a {mode} worker failed with status {process.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(r["seconds"] for r in results)
    return {**results[0], "seconds": seconds}


def main() -> None:
    from _common import add_results_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=800, help="training + validation images")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    add_results_arguments(parser, "distributed")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_worker(args.worker, str(args.root), args.size, args.epochs, args.batch_size)
        print(json.dumps(result))
        return
    from _common import write_results

    from catdog.data.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        args.root = make_synthetic_dataset(
            Path(tmp) / "data", images_per_class=args.images // 2, image_size=(args.size,) * 2
        )
        runs = [
            ("(a) tutorial recipe, plain Keras fit, 1 process", launch("keras", 1, args)),
            ("(b) catdog train, 1 process, no strategy", launch("none", 1, args)),
            ("(c) catdog train, multi_worker, 1 worker", launch("multi_worker", 1, args)),
            ("(d) catdog train, multi_worker, 2 workers", launch("multi_worker", 2, args)),
        ]
    baseline = runs[0][1]["images"] * args.epochs / runs[0][1]["seconds"]
    rows = []
    for name, result in runs:
        rate = result["images"] * args.epochs / result["seconds"]
        accuracy = result.get("val_accuracy")
        rows.append(
            {
                "path": name,
                "fit_seconds": round(result["seconds"], 2),
                "train_images_per_s": round(rate, 1),
                "vs_a": round(rate / baseline, 3),
                "last_val_accuracy": None if accuracy is None else round(accuracy, 4),
            }
        )
        print(" | ".join(str(value) for value in rows[-1].values()))
    two, one = runs[3][1], runs[2][1]
    print(f"2 workers vs 1 worker: {one['seconds'] / two['seconds']:.2f}x the images/s")
    del args.worker, args.root  # internal: not settings
    write_results(
        args,
        f"Distributed training, {args.images} images at {args.size}px, {args.epochs} epochs, "
        "model B",
        rows,
        notes=f"2 workers vs 1 worker: {one['seconds'] / two['seconds']:.2f}x the images/s, on "
        "one 2-core machine where both workers share the cores (no speedup expected; the "
        "all-reduce over gRPC after each step is the overhead).",
        extras={"two_vs_one_worker": round(one["seconds"] / two["seconds"], 3)},
    )


if __name__ == "__main__":
    main()
