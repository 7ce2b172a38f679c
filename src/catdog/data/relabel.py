"""Relabel maps: images a user files under another class than their folder's, read from a
review page's ``decisions.json`` (its ``relabel`` map) or a JSON ``{path: class}`` map, and
applied to the split lists. Nothing on disk moves: each image keeps its split and changes
class in the lists only. What a run records of a map is ``describe_relabel``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from catdog.errors import InputFileNotFoundError, InvalidArgumentError

logger = logging.getLogger("catdog")

Relabel = str | os.PathLike | dict | None
"""What ``relabel=`` takes: a ``{path: class}`` map, or the path of a JSON file holding one."""


def read_relabel_map(relabel: Relabel) -> dict[str, str]:
    """The ``{path: class}`` map ``relabel`` holds: a map as given, or a JSON file's (a
    review page's ``decisions.json``, its ``"relabel"`` map, or a map of its own).

    Examples:
        >>> read_relabel_map({"train/cats/3.jpg": "dogs"})
        {'train/cats/3.jpg': 'dogs'}
    """
    if relabel is None:
        return {}
    if isinstance(relabel, dict):
        listed = relabel
    else:
        source = Path(relabel)
        if not source.is_file():
            raise InputFileNotFoundError(
                f"The relabel file {str(source)!r} does not exist: pass the decisions.json a "
                "catdog review page saved, or a JSON file mapping image paths to class names."
            )
        try:
            listed = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidArgumentError(f"{str(source)!r} is not valid JSON ({error}).") from None
        if isinstance(listed, dict) and "relabel" in listed:
            listed = listed["relabel"]
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise InvalidArgumentError(
            f"{relabel!r} holds no map of image paths to class names: expected a review "
            'page\'s decisions.json (its "relabel" map) or {"path": "class", ...}.'
        )
    return dict(listed)


def describe_relabel(relabel: Relabel) -> dict:
    """A relabel map as plain data, what a run records of it: the file (``relabel``,
    absolute; ``None`` for a map given as such), the map (``relabelled``, sorted) and its
    SHA-256 (``relabel_sha256``); all ``None`` without one.

    Examples:
        >>> describe_relabel(None)
        {'relabel': None, 'relabelled': None, 'relabel_sha256': None}
    """
    if relabel is None:
        return {"relabel": None, "relabelled": None, "relabel_sha256": None}
    mapping = dict(sorted(read_relabel_map(relabel).items()))
    text = json.dumps(mapping, ensure_ascii=False, sort_keys=True)
    return {
        "relabel": None if isinstance(relabel, dict) else os.path.abspath(relabel),
        "relabelled": mapping,
        "relabel_sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
    }


def relabel_files(
    root: str | os.PathLike,
    split_paths: dict[str, dict[str, list[str]]],
    relabel: Relabel,
) -> dict[str, dict[str, list[str]]]:
    """``split_paths`` with each image the map names moved to its new class, in its split.

    A path is absolute, relative to ``root`` (as a review page of an audit writes them) or
    to the working folder. A class that is not one of the data's raises
    [`InvalidArgumentError`][catdog.errors.InvalidArgumentError]; paths that match no image
    are logged and ignored, as an exclusion's are.

    Examples:
        ```python
        names, split = split_files("data")
        split = relabel_files("data", split, {"train/cats/cat.3.jpg": "dogs"})
        ```
    """
    mapping = read_relabel_map(relabel)
    if not mapping:
        return split_paths
    classes = sorted({name for by_class in split_paths.values() for name in by_class})
    wrong = sorted({c for c in mapping.values() if c not in classes})
    if wrong:
        raise InvalidArgumentError(
            f"The relabel map names class(es) the data does not have: {', '.join(wrong)}; "
            f"the classes are {', '.join(classes)}."
        )
    wanted = {}
    for entry, label in mapping.items():
        for candidate in (os.path.join(root, entry), entry):
            wanted[os.path.abspath(candidate)] = label
    moved = 0
    out = {split: {name: [] for name in by_class} for split, by_class in split_paths.items()}
    for split, by_class in split_paths.items():
        for name, paths in by_class.items():
            for path in paths:
                label = wanted.get(os.path.abspath(path), name)
                moved += label != name
                out[split][label].append(path)
    logger.info("Relabelled %d of the %d image(s) the relabel map names.", moved, len(mapping))
    if moved < len(mapping):
        logger.warning(
            "%d path(s) of the relabel map match no image in %s or already have that class.",
            len(mapping) - moved,
            root,
        )
    return out
