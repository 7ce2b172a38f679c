"""The device without TensorFlow (.ci/run): write a few photos, or compare two prediction CSVs.

    python .ci/lite_check.py photos FOLDER        # 6 generated photos (JPEG, PNG, GIF)
    python .ci/lite_check.py compare FULL LITE    # probabilities agree within TOLERANCE

Runs in the environment without TensorFlow: NumPy and Pillow only.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TOLERANCE = 1e-4  # the same pixels (Pillow decodes as TensorFlow does), LiteRT against TF


def photos(folder: Path) -> None:
    """Smooth random images of several sizes and formats, so that decoding and resizing count."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(300, 400, "jpg"), (64, 64, "jpg"), (90, 50, "png"), (700, 500, "jpg"),
             (129, 131, "gif"), (40, 33, "jpg")]  # fmt: skip
    for i, (height, width, suffix) in enumerate(sizes):
        coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(
            folder / f"photo_{i}.{suffix}"
        )


def rows(path: Path) -> dict[str, dict[str, float]]:
    """``{path: {probability column: value}}`` of a ``catdog predict --output`` CSV file."""
    with open(path, newline="") as f:
        return {
            row["path"]: {k: float(v) for k, v in row.items() if k.startswith("probability_")}
            for row in csv.DictReader(f)
        }


def compare(full: Path, lite: Path) -> None:
    expected, found = rows(full), rows(lite)
    assert expected and expected.keys() == found.keys(), (sorted(expected), sorted(found))
    worst = max(abs(expected[p][c] - found[p][c]) for p in expected for c in expected[p])
    print(f"{lite} against {full}: {len(found)} images, largest difference {worst:.2g}")
    assert worst <= TOLERANCE, f"the probabilities differ by {worst} (over {TOLERANCE})"


if __name__ == "__main__":
    if sys.argv[1] == "photos":
        photos(Path(sys.argv[2]))
    else:
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
