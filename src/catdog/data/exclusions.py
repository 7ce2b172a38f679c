"""Exclude lists: the images a user leaves out of every split (an audit's ``exclude`` list, a
text file, or a list of paths), read once, and their digest: what a run records of them, so
that a changed list is a changed run and the run can be scored again after the list moves.
Which files of a split a list matches is `excluded_paths`; leaving them out of the splits is
[`exclude_files`][catdog.data.files.exclude_files]."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from catdog.errors import InputFileNotFoundError, InvalidArgumentError

logger = logging.getLogger("catdog")

Exclude = str | os.PathLike | Sequence[str | os.PathLike] | None
"""What ``exclude=`` takes: a list of image paths, or the path of a file listing them."""


def read_exclude_list(exclude: Exclude) -> list[str]:
    """The paths that ``exclude`` lists: a list of paths as given, or those a file lists.

    The file is an ``audit.json`` written by [`catdog.audit`][catdog.training.audit.audit]
    (its ``"exclude"`` list), a JSON list of paths, or a text file with one path a line
    (blank lines and lines starting with ``#`` are ignored).

    Examples:
        ```python
        read_exclude_list("audit/audit.json")[:1]
        # ['train/cats/cat.17.jpg']
        ```
    """
    if exclude is None:
        return []
    if not isinstance(exclude, str | os.PathLike):
        return [os.fspath(p) for p in exclude]
    source = Path(exclude)
    if source.is_dir():
        raise InvalidArgumentError(
            f"The exclude list {str(source)!r} is a folder, not a list of paths: pass an "
            "audit.json written by catdog audit, or a text file with one image path a line "
            "(list a folder's images to leave them all out)."
        )
    if not source.is_file():
        raise InputFileNotFoundError(
            f"The exclude list {str(source)!r} does not exist: pass an audit.json written by "
            "catdog audit, or a text file with one image path a line."
        )
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # an image, say: exclude="cat.jpg" instead of ["cat.jpg"]
        raise InvalidArgumentError(
            f"{str(source)!r} is not a text file listing paths: pass an audit.json, a text file "
            "with one path a line, or a list of paths (exclude=[path])."
        ) from None
    if source.suffix.lower() != ".json":
        return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
    try:
        listed = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"{str(source)!r} is not valid JSON ({error}).") from None
    listed = listed.get("exclude") if isinstance(listed, dict) else listed
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise InvalidArgumentError(
            f'{str(source)!r} holds no list of paths: expected an audit.json (its "exclude" '
            "list) or a JSON list of image paths."
        )
    return listed


def excluded_paths(root: str | os.PathLike, paths: Sequence[str], exclude: Exclude) -> set[str]:
    """The absolute paths of ``paths`` that ``exclude`` lists: a listed path is absolute,
    relative to ``root`` (as ``audit.json`` writes them) or relative to the working folder.

    Logs how many files are left out, and warns about listed paths that match no image.

    Examples:
        >>> sorted(excluded_paths("/data", ["/data/a.jpg", "/data/b.jpg"], ["a.jpg"]))
        ['/data/a.jpg']
    """
    listed = read_exclude_list(exclude)
    if not listed:
        return set()
    present = {os.path.abspath(p) for p in paths}
    matched, unmatched = set(), []
    for entry in listed:
        candidates = {os.path.abspath(os.path.join(root, entry)), os.path.abspath(entry)}
        hits = candidates & present
        matched |= hits
        if not hits:
            unmatched.append(entry)
    where = f"listed in {str(exclude)!r}" if isinstance(exclude, str | os.PathLike) else "listed"
    logger.info("Excluding %d of the %d file(s) %s.", len(matched), len(listed), where)
    if unmatched:
        logger.warning(
            "%d of the %d excluded path(s) match no image in %s (%d matched); ignoring: %s",
            len(unmatched),
            len(listed),
            root,
            len(listed) - len(unmatched),
            ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else ""),
        )
    return matched


def exclude_list_sha256(paths: Sequence[str]) -> str:
    """SHA-256 of the paths an exclude list names, in any order: equal exactly for the same set.

    Examples:
        >>> exclude_list_sha256(["b.jpg", "a.jpg"]) == exclude_list_sha256(["a.jpg", "b.jpg"])
        True
    """
    text = "\n".join(sorted(set(paths)))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def describe_exclusion(exclude: Exclude) -> dict:
    """An exclusion as plain data, what a run records of it: the list file (``exclude``,
    absolute; ``None`` for a list of paths), the paths it names (``excluded``, sorted, each
    once) and their SHA-256 (``exclude_sha256``); all ``None`` without an exclusion.

    Examples:
        >>> describe_exclusion(["train/cats/cat.1.jpg", "train/cats/cat.0.jpg"])["excluded"]
        ['train/cats/cat.0.jpg', 'train/cats/cat.1.jpg']
        >>> describe_exclusion(None)
        {'exclude': None, 'excluded': None, 'exclude_sha256': None}
    """
    if exclude is None:
        return {"exclude": None, "excluded": None, "exclude_sha256": None}
    paths = sorted(set(read_exclude_list(exclude)))
    return {
        "exclude": os.path.abspath(exclude) if isinstance(exclude, str | os.PathLike) else None,
        "excluded": paths,
        "exclude_sha256": exclude_list_sha256(paths),
    }
