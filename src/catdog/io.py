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
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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


# ----------------------------------------------------------------------------- owned folders
_OWNED = re.compile(r"(\d+)-([0-9a-f]{8})\.[a-z0-9_]{8}")
"""What follows the prefix in the name of a folder ``owned_folder`` made: the pid and host
tag of its process, then ``mkdtemp``'s random part."""


def _host_tag() -> str:
    """Eight hex digits naming this host in an owned folder's name."""
    name = socket.gethostname().encode("utf-8", "surrogateescape")
    return hashlib.sha256(name).hexdigest()[:8]


def _exited(pid: int) -> bool:
    """True only when no process ``pid`` runs on this host (unsure: False)."""
    if pid <= 0 or os.name == "nt":  # Windows' os.kill would stop the process
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # another user's process (PermissionError): it runs
        return False
    return False


def owned_folder(parent: str | os.PathLike, prefix: str) -> Path:
    """A new folder in ``parent`` named ``prefix``, this process's pid and host, and a random
    part, so that a later run can tell it was left by a process that has exited (see
    [`abandoned_folders`][catdog.io.abandoned_folders]).

    Examples:
        ```python
        owned_folder("/tmp", "catdog-evaluate-").name
        # 'catdog-evaluate-4242-1f2e3d4c.k2j4h6g8'
        ```
    """
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{_host_tag()}.", dir=parent))


def abandoned_folders(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """The folders in ``parent`` that [`owned_folder`][catdog.io.owned_folder] made with
    ``prefix`` for a process of this host that has exited (killed before it could remove
    them). A live process's folder, one of another host and one named otherwise are never
    listed.

    Examples:
        ```python
        for folder in abandoned_folders("/tmp", "catdog-evaluate-"):
            shutil.rmtree(folder)
        ```
    """
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith(prefix)]
    except OSError:  # no such folder, or not readable: nothing of ours to remove
        return []
    found, host = [], _host_tag()
    for entry in entries:
        owner = _OWNED.fullmatch(entry.name[len(prefix) :])
        if (
            owner is not None
            and owner.group(2) == host
            and entry.is_dir(follow_symlinks=False)
            and _exited(int(owner.group(1)))
        ):
            found.append(Path(entry.path))
    return sorted(found)


@contextmanager
def temporary_folder(prefix: str, parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A new folder in ``parent`` (default: the system's temporary folder) for the ``with``
    block, removed when it ends, also by an exception (a SIGTERM turned into one by the
    CLI). Folders of the same ``prefix`` that killed processes left behind are removed
    first (see [`abandoned_folders`][catdog.io.abandoned_folders]).

    Examples:
        ```python
        with temporary_folder("catdog-evaluate-") as cache:
            ...
        ```
    """
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    for folder in abandoned_folders(parent, prefix):
        _remove_abandoned(folder, "left by a catdog process that was killed")
    folder = owned_folder(parent, prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_abandoned_temporary(folder: Path, final: Path) -> None:
    """Remove an ``atomic_path`` folder of a killed process; a previous folder it had moved
    aside (killed between its two renames) goes back to ``final`` first."""
    replaced = folder / ".replaced"
    if replaced.exists() and not final.exists():
        with suppress(OSError):  # another process may be restoring it
            os.replace(replaced, final)
    _remove_abandoned(folder, f"left by a catdog process killed while writing {final}")


def _remove_abandoned(folder: Path, why: str) -> None:
    """Remove a folder a killed process left (another user's may stay: logged only if gone)."""
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        logger.info("removed %s, %s", folder, why)


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    The temporary name keeps the suffix (Keras checks ``.keras``) and lives in the same
    folder, so the final ``os.replace`` is atomic. With ``directory=True`` an existing folder
    at ``path`` is replaced (moved aside first, deleted once the new one is in place); callers
    decide whether that folder may be replaced. Output-path problems (a file in the way, no
    permission) raise [`OutputError`][catdog.errors.OutputError]. The temporary folder
    (``.NAME.<pid>-<host>.<random>``) is removed when the block ends, also by an exception;
    one that a killed process left for the same ``path`` is removed by the next call (see
    [`abandoned_folders`][catdog.io.abandoned_folders]).

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
    for abandoned in abandoned_folders(final.parent, f".{final.name}."):
        _remove_abandoned_temporary(abandoned, final)
    try:
        tmp_dir = owned_folder(final.parent, f".{final.name}.")
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
