"""What every catdog figure is made of, headless-safe: a matplotlib ``Figure`` without pyplot
(no GUI backend, safe without a display), a grid of image cells, titles shown literally, and
saving as PNG atomically. matplotlib is imported only when a figure is made."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from catdog.io import write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
"""The resolution of every figure catdog draws and saves."""


def figure(width: float, height: float) -> Figure:
    """A new matplotlib ``Figure`` of ``width`` x ``height`` inches, constrained layout."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe without a display

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def plain(text: object) -> str:
    """``text`` as matplotlib shows it literally: every ``$`` escaped, so user text (class and
    file names) is never parsed as mathtext (``notes_$5_$10`` would fail to draw).

    Examples:
        >>> plain("notes_$5_$10")
        'notes_\\\\$5_\\\\$10'
    """
    return str(text).replace("$", r"\$")


def finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """``fig``, saved first as PNG (atomically) at ``path`` unless ``path`` is ``None``."""
    if path is not None:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    return fig


def grid(count: int, max_cols: int, cell: float = 2.6) -> tuple[Figure, np.ndarray]:
    """A figure of ``count`` image cells, at most ``max_cols`` a row: ``(figure, axes)``, the
    axes flat, the cells left over blank."""
    cols = max(1, min(max_cols, count))
    rows = max(1, -(-count // cols))
    fig = figure(cell * cols, cell * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[count:]:  # the cells left over stay blank
        ax.axis("off")
    return fig, axes


def show(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    """Draw a 0..255 ``image`` on ``ax``, without axes, under its ``title`` (shown literally)."""
    ax.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8"))
    if title:
        ax.set_title(plain(title), fontsize=9)
    ax.axis("off")
