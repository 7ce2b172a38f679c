"""Atomic file writing: a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    The temporary name keeps the suffix (Keras checks ``.keras``) and lives in the same
    folder, so the final ``os.replace`` is atomic.

    Examples:
        >>> with atomic_path("model.keras") as tmp:  # doctest: +SKIP
        ...     model.save(tmp)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tmp = tmp_dir / final.name
    try:
        yield tmp
        if directory and final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_model(model, path: str | os.PathLike) -> Path:
    """``model.save(path)`` atomically (``.keras`` format).

    Examples:
        >>> save_model(model, "runs/demo/model.keras")  # doctest: +SKIP
    """
    if Path(path).suffix != ".keras":
        from catdog.errors import InvalidArgumentError

        raise InvalidArgumentError(f"Model files must end in .keras, got {str(path)!r}.")
    return write_atomic(path, model.save)
