"""Download and extract the cats_and_dogs_filtered archive, safely and only once.

Concurrent processes wait for each other (a lock file per archive and per folder), so two
first runs on one machine download and extract once. An extracted folder records the SHA-256
of the archive it came from and is extracted again when the archive changes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from catdog.errors import DatasetError, DownloadError, IntegrityError
from catdog.io import file_lock, sha256sum

logger = logging.getLogger("catdog")

CATS_AND_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
CATS_AND_DOGS_SIZE = 68_606_236
CATS_AND_DOGS_FOLDER = "cats_and_dogs_filtered"
MAX_EXTRACT_BYTES = 16 * 2**30
"""Archives that would unpack to more bytes are refused before anything is written."""
MAX_EXTRACT_MEMBERS = 500_000
"""Archives with more members are refused before anything is written."""
_SOURCE_MARKER = ".catdog-archive-sha256"


def default_cache_dir() -> Path:
    """The Keras cache folder: ``$KERAS_HOME`` or ``~/.keras`` (as ``keras.utils.get_file``)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def _check_archive(path: Path, expected_size: int | None, file_hash: str | None) -> None:
    """Raise IntegrityError unless the file has the expected hash (or, without one, size)."""
    if file_hash:
        actual = sha256sum(path)
        if actual != file_hash.lower():
            raise IntegrityError(
                f"{path.name}: SHA-256 mismatch, expected {file_hash.lower()}, got {actual}."
            )
    elif expected_size is not None:
        actual_size = path.stat().st_size
        if actual_size != expected_size:
            raise IntegrityError(
                f"{path.name}: size mismatch, expected {expected_size:,} bytes, got "
                f"{actual_size:,} bytes (an interrupted or wrong download)."
            )


def fetch_archive(
    origin: str,
    fname: str,
    datasets_dir: Path,
    *,
    expected_size: int | None,
    file_hash: str | None,
) -> Path:
    """Return the verified archive ``datasets_dir/fname``, downloading it when needed.

    The download goes to ``fname + ".part"`` and is renamed only after the size or hash
    check passed, so an interrupted or corrupt download is never taken for a good one. A
    second process asking for the same archive meanwhile waits, then uses it. A verified
    archive is used without taking the lock (a read-only cache works).

    Args:
        origin: the URL to download the archive from.
        fname: the archive's file name in ``datasets_dir``.
        datasets_dir: the folder that keeps downloaded archives.
        expected_size: the archive's size in bytes, checked when ``file_hash`` is ``None``.
        file_hash: the archive's SHA-256 (hex), or ``None`` to check the size only.
    """
    final = datasets_dir / fname
    if final.is_file():
        try:
            _check_archive(final, expected_size, file_hash)
            return final
        except IntegrityError:
            pass  # replaced below, under the lock
    datasets_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(datasets_dir / f".{fname}.lock"):
        return _fetch(origin, fname, datasets_dir, expected_size, file_hash)


def _fetch(origin, fname, datasets_dir, expected_size, file_hash) -> Path:
    import keras  # imported here so that `import catdog` stays light

    final = datasets_dir / fname
    if final.exists():
        try:
            _check_archive(final, expected_size, file_hash)
            return final
        except IntegrityError as error:
            logger.warning("Cached archive is not valid (%s); downloading it again.", error)
            final.unlink()
    part = datasets_dir / (fname + ".part")
    part.unlink(missing_ok=True)
    try:
        keras.utils.get_file(part.name, origin, cache_dir=str(datasets_dir), cache_subdir=".")
    except Exception as error:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"Could not download {origin}: {error}. Check the network connection, or pass "
            "origin= a reachable mirror (with file_hash=), or use catdog.from_directory() on a "
            "copy you already have."
        ) from error
    try:
        _check_archive(part, expected_size, file_hash)
    except IntegrityError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, final)
    return final


def _unsafe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


def _check_members(archive: Path, zf: zipfile.ZipFile, folder: str) -> None:
    infos = zf.infolist()
    bad = [i.filename for i in infos if _unsafe_member(i.filename)]
    if bad:
        raise DatasetError(
            f"Refusing to extract {archive.name}: members would land outside the "
            f"target folder: {', '.join(bad[:5])}."
        )
    if not any(i.filename.startswith(folder + "/") for i in infos):
        raise DatasetError(f"{archive.name} has no top folder {folder}/ inside.")
    total = sum(i.file_size for i in infos)  # zipfile never unpacks more than this
    if len(infos) > MAX_EXTRACT_MEMBERS or total > MAX_EXTRACT_BYTES:
        raise DatasetError(
            f"Refusing to extract {archive.name}: {len(infos):,} members and {total:,} bytes "
            f"uncompressed, over the limits of {MAX_EXTRACT_MEMBERS:,} members and "
            f"{MAX_EXTRACT_BYTES:,} bytes (catdog.data.download.MAX_EXTRACT_MEMBERS / "
            "MAX_EXTRACT_BYTES). Raise them only for an archive you trust."
        )


def _extracted_from(marker: Path, digest: str) -> bool:
    try:
        return marker.read_text().strip() == digest
    except OSError:
        return False


def _move_aside(final: Path, marker: Path, archive: Path, tmp: Path) -> None:
    """Make room for a new extraction; never delete a folder catdog did not write."""
    if not final.exists():
        return
    if marker.is_file():  # catdog's own extraction of another archive
        logger.warning("%s came from another %s; extracting it again.", final, archive.name)
        os.replace(final, tmp / ".previous")  # removed with tmp
        return
    n = 1
    while final.with_name(f"{final.name}.previous-{n}").exists():
        n += 1
    kept = final.with_name(f"{final.name}.previous-{n}")
    logger.warning(
        "%s was not extracted by catdog; it is kept as %s and %s is extracted afresh.",
        final,
        kept,
        archive.name,
    )
    os.replace(final, kept)


def extract_once(
    archive: Path, target_dir: Path, folder: str, *, archive_hash: str | None = None
) -> Path:
    """Extract ``archive`` into ``target_dir/folder`` unless it was already extracted from it.

    The folder records the archive's SHA-256 (``archive_hash``, computed when not given); a
    folder catdog extracted from another archive is replaced, and a folder catdog did not
    extract (no record) is kept, renamed ``<folder>.previous-N``. Members with absolute paths
    or ``..``
    and archives over the size and member limits are refused before anything is written. The
    archive is unpacked in a temporary folder and moved into place in one rename, so an
    interrupted extraction never looks finished; concurrent callers wait for each other.
    """
    final = target_dir / folder
    digest = archive_hash or sha256sum(archive)
    marker = final / _SOURCE_MARKER
    if _extracted_from(marker, digest):  # no lock needed: a read-only cache works
        return final
    with file_lock(target_dir / f".{folder}.lock"):
        if _extracted_from(marker, digest):  # by a process we waited for
            return final
        try:
            with zipfile.ZipFile(archive) as zf:
                _check_members(archive, zf, folder)
                tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=target_dir))
                try:
                    zf.extractall(tmp)
                    (tmp / folder / _SOURCE_MARKER).write_text(digest + "\n")
                    _move_aside(final, marker, archive, tmp)
                    os.replace(tmp / folder, final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        except zipfile.BadZipFile as error:
            raise DatasetError(f"{archive} is not a valid zip archive: {error}.") from error
    return final
