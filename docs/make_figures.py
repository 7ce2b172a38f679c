"""Make the documentation's figures and results table by running the examples with ``--demo``.

    python docs/make_figures.py          # about five minutes on 2 CPU cores

Runs examples 01-08 in order with ``--demo`` (generated images, 64x64) into a temporary
folder, then copies their plots into ``docs/images/`` and the comparison table of
``06_score_on_test.py`` into ``docs/generated/comparison.md``. Nothing in ``docs/images/``
is drawn by hand; rerun this script after changing an example or a plot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catdog import __version__
from catdog.io import write_atomic, write_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
FIGURES = {  # example output -> docs/images/ name
    "samples.png": "samples.png",
    "label_counts.png": "label_counts.png",
    "augmented/augmentation.png": "augmentation.png",
    "baseline/history.png": "history_baseline.png",
    "augmented/history.png": "history_augmented.png",
    "preprocessed/history.png": "history_preprocessed.png",
    "transfer/history.png": "history_transfer.png",
    "confusion_matrix.png": "confusion_matrix.png",
    "misclassified.png": "misclassified.png",
    "understand/gradcam.png": "gradcam.png",
    "understand/lr_find.png": "lr_find.png",
}


def main() -> None:
    images, generated = ROOT / "docs" / "images", ROOT / "docs" / "generated"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory(prefix="catdog-docs-") as tmp:
        out = Path(tmp)
        for script in EXAMPLES:
            start = time.perf_counter()
            command = [sys.executable, str(script), "--demo", "--out", str(out)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{script.name} failed:\n{done.stderr[-3000:]}")
            print(f"{script.name}: {time.perf_counter() - start:.0f} s", flush=True)
        for source, name in FIGURES.items():
            write_atomic(images / name, lambda tmp, s=out / source: shutil.copyfile(s, tmp))
        table = (out / "comparison.md").read_text()
        stamp = f"Made by `docs/make_figures.py` with catdog {__version__}."
        write_text(generated / "comparison.md", f"{table}\n{stamp}\n")
        report = (out / "report.txt").read_text().split("\nmisclassified:")[0]  # no local paths
        write_text(generated / "report.txt", report.rstrip() + "\n")
    print(f"wrote {len(FIGURES)} figures to {images}, and {generated}/comparison.md, report.txt")


if __name__ == "__main__":
    main()
