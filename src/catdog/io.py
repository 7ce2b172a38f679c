"""Safe file writing: atomic replacement, valid JSON, and locks between processes.

A crash never leaves a half-written file under the final name; two processes that need the
same folder wait for each other (or the second is refused) instead of mixing their files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from catdog.errors import BusyError, OutputError

logger = logging.getLogger("catdog")


def _make_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise OutputError(
            f"Cannot write {str(final)!r}: a part of its folder path is a file, not a folder "
            f"({error.filename}). Choose another output path."
        ) from None
    except OSError as error:
        raise OutputError(
            f"Cannot write {str(final)!r}: its folder cannot be created ({error.strerror}). "
            "Choose a writable output path."
        ) from None
    if not os.access(final.parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write {str(final)!r}: the folder {str(final.parent)!r} is not writable. "
            "Choose a writable output path."
        )


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    The temporary name keeps the suffix (Keras checks ``.keras``) and lives in the same
    folder, so the final ``os.replace`` is atomic. With ``directory=True`` an existing folder
    at ``path`` is replaced (moved aside first, deleted once the new one is in place); callers
    decide whether that folder may be replaced. Output-path problems (a file in the way, no
    permission) raise [`OutputError`][catdog.errors.OutputError].

    Examples:
        ```python
        with atomic_path("model.keras") as tmp:
            model.save(tmp)
        ```
    """
    final = Path(path)
    _make_parent(final)
    if final.is_dir() and not directory:
        raise OutputError(f"{str(final)!r} is a folder; pass a file path instead.")
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    except OSError as error:
        raise OutputError(
            f"Cannot write {str(final)!r}: {error.strerror or error}. Choose a writable "
            "output path."
        ) from None
    tmp = tmp_dir / final.name
    try:
        yield tmp
        old = tmp_dir / ".replaced"
        if directory and final.is_dir():
            os.replace(final, old)  # deleted with tmp_dir below, once the new one is in place
        try:
            os.replace(tmp, final)
        except OSError:
            if old.exists():
                os.replace(old, final)  # put the previous folder back
            raise
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


def sha256sum(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_safe(data):
    """``data`` with every non-finite float (NaN, infinity) replaced by ``None``.

    JSON has no NaN: ``json.dumps`` would write ``NaN``, which strict readers reject.

    Examples:
        >>> json_safe({"loss": [0.5, float("nan")]})
        {'loss': [0.5, None]}
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value) for value in data]
    return data


def read_json(path: str | os.PathLike):
    """The JSON value in ``path``, or ``None`` when the file is missing or not valid JSON.

    Examples:
        >>> read_json("no/such/file.json") is None
        True
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: str | os.PathLike, data) -> Path:
    """Write valid JSON (indented, UTF-8, non-finite numbers as ``null``) atomically."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False)
    return write_text(path, text + "\n")


@contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True, busy: str = "") -> Iterator[None]:
    """Hold an inter-process lock on ``path`` (a lock file) for the ``with`` block.

    With ``wait=True`` a second process waits for the first to finish (logging that it
    waits); with ``wait=False`` it gets a [`BusyError`][catdog.errors.BusyError] whose message
    is ``busy``. The operating system releases the lock when a process dies, so a killed
    process never leaves a lock that blocks later runs.

    Examples:
        ```python
        with file_lock("runs/demo/.resume/lock", wait=False, busy="in use"):
            ...
        ```
    """
    from filelock import FileLock, Timeout

    _make_parent(Path(path))
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise BusyError(busy or f"{str(path)!r} is locked by another process.") from None
        logger.warning("Waiting for another catdog process to finish with %s ...", path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
