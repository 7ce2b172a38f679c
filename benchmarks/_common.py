"""Shared pieces of the benchmark scripts: machine line, results table, generated data."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("README.md")


def machine() -> str:
    """CPU model, cores and TensorFlow version, for the results table."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, TensorFlow {tf.__version__}"


def append_results(title: str, header: list[str], rows: list[list[str]], notes: str = "") -> None:
    """Append one run's table to benchmarks/README.md (under a dated heading)."""
    lines = [
        "",
        f"### {title} — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
    ]
    if notes:
        lines += ["", notes]
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def calibrated_base_weights(path: Path, image_size: int, images) -> Path:
    """MobileNetV2 weights for offline benchmarks: random convolutions whose BatchNorm
    statistics are set from ``images`` (0..255), so that frozen features are informative.
    (A randomly initialised base in inference mode outputs near-zero features, and the
    ImageNet weights need a network.) Both recipes load this same file."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=None
    )
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become this batch's statistics
    base(np.asarray(images, np.float32) / 127.5 - 1.0, training=True)
    base.save_weights(path)
    return path
