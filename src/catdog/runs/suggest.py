"""Which unlabelled photos to label next: ``catdog suggest``.

Chosen on real photos (benchmarks/bench_fewshot.py, the guide "From a few photos to a
model"): farthest-point selection (k-center greedy) on the embedding centred on every photo at
hand, starting from the photos already labelled, beat random choice and uncertainty sampling
early (97.5% against 96.9% and 96.6% held-out accuracy after 30 photos shown), and a photo
farther from every labelled photo than the labelled photos are from each other is kept apart
as probably none of the classes (with 1,000 pandas in the pool, uncertainty sampling showed
74% pandas; with this rule and the next, diversity showed 8%).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import check_int
from catdog.data.files import image_files
from catdog.data.images import PREDICT_BATCH_SIZE, load_images
from catdog.errors import DatasetError
from catdog.io import atomic_path
from catdog.runs.embeddings import embed, run_embeddings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIELDS = ("rank", "path", "nearest_class", "distance", "reason")
"""The columns of ``suggestions.csv``."""
CHOSEN = "unlike the labelled photos"
FAR = "far from every labelled photo: maybe none of your classes"


@dataclass(frozen=True)
class Suggestion:
    """A photo to label (``rank`` 1 first) or kept apart (``rank`` ``None``, ``reason`` says
    why); ``nearest_class``: the class of the nearest labelled photo; ``distance``: the cosine
    distance, on the centred embedding, to the nearest labelled or already suggested photo
    when it was chosen (kept apart: to the nearest labelled photo)."""

    rank: int | None
    path: str
    nearest_class: str | None
    distance: float
    reason: str


def farthest_first(
    labelled: np.ndarray, unlabelled: np.ndarray, count: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``(chosen, distances, far)``: up to ``count`` rows of ``unlabelled`` by k-center greedy
    from ``labelled`` (each the farthest, by cosine distance on the embedding centred on both
    sets, from the labelled and the chosen rows), their distances when chosen, and the mask
    of rows kept apart: farther from every labelled row than any labelled row is from its
    nearest other labelled row.

    Examples:
        >>> labelled = np.array([[1, 0.3, 0], [1, -0.3, 0], [-1, 0.3, 0], [-1, -0.3, 0]])
        >>> pool = np.array([[1, 0, 0], [0, 1, 0], [-1, 0.1, 0], [0, 0, 1]])
        >>> chosen, _, far = farthest_first(labelled, pool, 2)
        >>> chosen, far.tolist()
        ([0, 2], [False, True, False, True])
    """
    from catdog.models.confidence import unit_rows  # Keras: not on catdog --help's path

    labelled, unlabelled = np.asarray(labelled, np.float32), np.asarray(unlabelled, np.float32)
    centre = np.concatenate([labelled, unlabelled]).mean(axis=0)
    known, pool = unit_rows(labelled - centre), unit_rows(unlabelled - centre)
    within = known @ known.T
    np.fill_diagonal(within, -np.inf)
    limit = float((1.0 - within.max(axis=1)).max()) if len(known) > 1 else np.inf
    nearest = 1.0 - (pool @ known.T).max(axis=1)
    far = nearest > limit
    left, chosen, distances = ~far, [], []
    for _ in range(min(count, int(left.sum()))):
        i = int(np.argmax(np.where(left, nearest, -np.inf)))
        chosen.append(i)
        distances.append(float(nearest[i]))
        left[i] = False
        nearest = np.minimum(nearest, 1.0 - pool @ pool[i])
    return chosen, np.asarray(distances), far


def suggest(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    run: str | os.PathLike,
    count: int = 50,
    *,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
) -> list[Suggestion]:
    """The ``count`` unlabelled photos of ``images`` (files or folders) most worth labelling
    for the run's model, best first, then those kept apart as probably none of its classes.
    Photos already in the run's data are left out.

    Examples:
        ```python
        for s in suggest("photos/unlabelled", "runs/pets", 20):
            print(s.rank, s.path, s.nearest_class)
        ```
    """
    check_int("count", count)
    bank = run_embeddings(run, engine=engine, batch_size=batch_size)
    known = {os.path.abspath(p) for p in bank.paths or []}
    listed = image_files([images] if isinstance(images, str | os.PathLike) else list(images))
    files = [os.path.abspath(f) for f in listed if os.path.abspath(f) not in known]
    if not files:
        raise DatasetError(f"No unlabelled image found in {images!r} (outside the run's data).")
    queries = embed(run, files, engine=engine, batch_size=batch_size)
    chosen, distances, far = farthest_first(bank.vectors, queries.vectors, count)
    nearest = (queries.vectors @ bank.vectors.T).argmax(axis=1)
    names = bank.class_names or []

    def label(i: int) -> str | None:
        index = int(bank.labels[nearest[i]]) if bank.labels is not None else -1
        return names[index] if 0 <= index < len(names) else None

    ranked = [
        Suggestion(rank, queries.paths[i], label(i), round(float(d), 4), CHOSEN)
        for rank, (i, d) in enumerate(zip(chosen, distances, strict=True), start=1)
    ]
    apart = 1.0 - (queries.vectors @ bank.vectors.T).max(axis=1)
    return ranked + [
        Suggestion(None, queries.paths[i], label(i), round(float(apart[i]), 4), FAR)
        for i in np.flatnonzero(far)
    ]


def write_suggestions(suggestions: list[Suggestion], path: str | os.PathLike) -> Path:
    """Write ``suggestions`` as a CSV file (columns ``FIELDS``; an empty rank for the photos
    kept apart) in one step; ``catdog review`` reads it.

    Examples:
        ```python
        write_suggestions(suggest("photos", "runs/pets"), "suggestions.csv")
        ```
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        for s in suggestions:
            writer.writerow({f: ("" if getattr(s, f) is None else getattr(s, f)) for f in FIELDS})
    return Path(path)


GRID_MOST = 24
"""The most photos ``plot_suggestions`` draws."""


def plot_suggestions(
    suggestions: list[Suggestion], path: str | os.PathLike, side: int = 128
) -> Figure:
    """Draw the first ``GRID_MOST`` ranked suggestions as a thumbnail grid (titled with their
    rank and nearest class) and save it as PNG at ``path``; returns the figure.

    Examples:
        ```python
        plot_suggestions(suggest("photos", "runs/pets"), "suggestions.png")
        ```
    """
    from catdog.report import _figures  # matplotlib: not on catdog --help's path

    shown = [s for s in suggestions if s.rank is not None][:GRID_MOST]
    fig, axes = _figures.grid(max(1, len(shown)), 6, cell=2.0)
    pixels = load_images([s.path for s in shown], (side, side)) if shown else []
    for ax, s, image in zip(axes, shown, pixels, strict=False):
        _figures.show(ax, image, f"#{s.rank} near {s.nearest_class or '-'}")
    return _figures.finish(fig, path)
