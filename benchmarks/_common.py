"""Shared pieces of the benchmark scripts: timing, machine line, results files."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("results")  # one <name>.json per benchmark


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
    """CPU model, cores and TensorFlow version, for the results file."""
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


def versions() -> dict:
    """The versions a results file records: those a run folder records."""
    from catdog.runs.record import versions as recorded

    return recorded()


def add_results_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--results PATH`` (default benchmarks/results/NAME.json) and ``--no-save``."""
    parser.add_argument(
        "--results", type=Path, default=RESULTS / f"{name}.json", help="the results file"
    )
    parser.add_argument(
        "--no-save", "--no-append", action="store_true", help="print only; write no results file"
    )


def write_results(
    args: argparse.Namespace,
    title: str,
    rows: list[dict],
    notes: str = "",
    extras: dict | None = None,
) -> None:
    """Write one run's results file (``args.results``) unless ``args.no_save``.

    The file holds the date, machine, versions, command line and settings, every row, and
    ``extras`` (figures that are not rows); ``python benchmarks/render.py`` then makes the
    docs' tables from it.
    """
    if args.no_save:
        return
    settings = {k: v for k, v in vars(args).items() if k not in ("results", "no_save")}
    result = {
        "benchmark": args.results.stem,
        "title": title,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions(),
        "command": shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "settings": json.loads(json.dumps(settings, default=str)),
        "rows": rows,
        "extras": extras or {},
        "notes": notes,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.results}; `python benchmarks/render.py` updates the docs' tables")
