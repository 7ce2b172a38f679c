"""Shared pieces of the benchmark scripts: machine line, results table, generated data."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("README.md")


def median_seconds(fn, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn``, after one warm-up call."""
    fn()  # warm up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
