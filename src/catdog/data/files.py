"""Finding and splitting image files: class folders, content keys (byte-identical files stay in
one split), and the leak-free per-file split decided before any tensor exists (so it can be
audited: ``splits.files["test"]``), and the files a user excludes (an audit's list) dropped from
whichever split holds them. File names that are not valid UTF-8 are skipped."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catdog._rules import (
    DEFAULT_SEED,
    SPLIT_NAMES,
    check_fraction,
    has_control_characters,
)
from catdog.data.exclusions import Exclude, excluded_paths
from catdog.errors import DatasetError, DatasetNotFoundError, InvalidArgumentError
from catdog.io import sha256sum

logger = logging.getLogger("catdog")

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")


# ----------------------------------------------------------------------------- scanning
def _is_image_file(path: Path, root: Path) -> bool:
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        # hidden files and folders: .DS_Store, "._name.jpg" forks, .ipynb_checkpoints/, ...
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    )


def _valid_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")  # a name that is not UTF-8 holds surrogate escapes
    except UnicodeEncodeError:
        return False
    return True


def scan_class_folders(path: str | os.PathLike) -> tuple[list[str], dict[str, list[str]]]:
    """Return ``(class_names, {class_name: sorted image paths})`` for ``path/<class>/*``.

    Non-image files and hidden files and folders (names starting with ``.``) are ignored;
    files whose names are not valid UTF-8 are skipped with a warning naming them. Raises a
    clear error for a missing folder, fewer than two classes, or a class folder without images.

    Examples:
        ```python
        class_names, files = scan_class_folders("data/train")
        class_names
        # ['cats', 'dogs']
        ```
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetNotFoundError(f"Data folder {str(root)!r} does not exist or is not a folder.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{str(root)!r} has {len(class_dirs)} class folder(s) "
            f"({', '.join(p.name for p in class_dirs) or 'none'}); a classifier needs at least "
            "two: put the images of each class in a sub-folder named after the class, e.g. "
            f"{root}/cats/ and {root}/dogs/."
        )
    for class_dir in class_dirs:
        if has_control_characters(class_dir.name):
            raise DatasetError(
                f"The class folder {str(class_dir)!r} has a control character (a line break, "
                "tab or undecodable byte) in its name, which would break labels files and "
                "reports; rename the folder with printable characters."
            )
    files, undecodable_names = {}, []
    for class_dir in class_dirs:
        found = sorted(str(p) for p in class_dir.rglob("*") if _is_image_file(p, class_dir))
        images = [p for p in found if _valid_utf8(p)]
        undecodable_names += [p for p in found if not _valid_utf8(p)]
        check_class_images(class_dir, images)
        files[class_dir.name] = images
    if undecodable_names:
        logger.warning(
            "Skipped %d file(s) whose names are not valid UTF-8 (rename them to use them): %s",
            len(undecodable_names),
            ", ".join(ascii(p) for p in undecodable_names),
        )
    return [p.name for p in class_dirs], files


def check_class_images(
    folder: str | os.PathLike, images: Sequence[str], excluded_by: str | None = None
) -> None:
    """The rule for every class folder: it holds images, also once an exclusion leaves some out.

    ``images`` are the ones it holds (the training images left, after an exclusion);
    ``excluded_by`` names the exclusion that left it without any (say ``"the exclude list
    'audit.json'"``). Raises [`DatasetError`][catdog.errors.DatasetError] saying what to do.

    Examples:
        >>> check_class_images("data/train/cats", [])
        Traceback (most recent call last):
        ...
        catdog.errors.DatasetError: Class folder 'data/train/cats' contains no images (...
    """
    if images:
        return
    if excluded_by is not None:
        raise DatasetError(
            f"Class folder {str(folder)!r} has no training image left: {excluded_by} leaves "
            "out every one, and a model cannot learn a class it never sees. Take some of them "
            "off the list, or remove the folder."
        )
    raise DatasetError(
        f"Class folder {str(folder)!r} contains no images ({', '.join(IMAGE_EXTENSIONS)}). "
        "Add images or remove the folder."
    )


def image_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The image files that ``paths`` name: files as given, folders searched recursively.

    A folder gives its image files (``.bmp``, ``.gif``, ``.jpeg``, ``.jpg``, ``.png``,
    ``.webp``; hidden files and folders left out; symbolic links to folders not followed),
    sorted by path, in place of the folder; a file is kept as given (whatever its name; the
    decoder decides). Files and folders mix in any order, and the order is stable. A folder
    with no image file raises [`DatasetError`][catdog.errors.DatasetError]; a file name that
    is not valid UTF-8 is skipped with a warning.

    Examples:
        ```python
        image_files(["photos", "extra/cat.jpg"])
        # ['photos/a.jpg', 'photos/holiday/b.png', 'extra/cat.jpg']
        ```
    """
    found = []
    for path in paths:
        root = Path(path)
        if not root.is_dir():
            found.append(str(path))
            continue
        inside = sorted(str(p) for p in root.rglob("*") if _is_image_file(p, root))
        readable = [p for p in inside if _valid_utf8(p)]
        if len(readable) < len(inside):
            logger.warning(
                "Skipped %d file(s) whose names are not valid UTF-8 (rename them to use them)",
                len(inside) - len(readable),
            )
        if not readable:
            raise DatasetError(
                f"The folder {str(path)!r} holds no image file ({', '.join(IMAGE_EXTENSIONS)}, "
                "searched in its sub-folders too): pass a folder of images, or image files."
            )
        found += readable
    return found


@functools.cache
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time) in a process."""
    return sha256sum(path)


def content_keys(paths: Sequence[str]) -> dict[str, str]:
    """Map each file to a key that is equal exactly for byte-identical files.

    Only files that share their size with another file are read (and hashed, once per
    process); every other file is its own key.

    Examples:
        ```python
        keys = content_keys(["a.jpg", "copy_of_a.jpg"])
        keys["a.jpg"] == keys["copy_of_a.jpg"]
        # True
        ```
    """
    by_size: dict[int, list[tuple[str, os.stat_result]]] = defaultdict(list)
    for path in paths:
        stat = os.stat(path)
        by_size[stat.st_size].append((path, stat))
    keys = {}
    for group in by_size.values():
        for path, stat in group:
            keys[path] = path
            if len(group) > 1:
                with contextlib.suppress(OSError):  # unreadable: the decoder will name it
                    keys[path] = _content_hash(path, stat.st_size, stat.st_mtime_ns)
    return keys


def split_off(
    files: dict[str, list[str]], fraction: float, seed: int, keys: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Split each stratum's files (``{stratum: [paths]}``, a class or a label set) into
    ``(rest, carved)`` with ``fraction`` carved, reproducibly for a ``seed``. Files with the
    same key (see [`content_keys`][catdog.data.files.content_keys]) are carved together.

    Examples:
        >>> split_off({"cats": ["a", "b", "c", "d"]}, 0.5, 1, {p: p for p in "abcd"})[1]
        {'cats': ['a', 'b']}
    """
    rest, carved = {}, {}
    for index, (name, paths) in enumerate(sorted(files.items())):
        groups: dict[str, list[str]] = {}
        for path in paths:
            groups.setdefault(keys[path], []).append(path)
        members = list(groups.values())
        order = np.random.default_rng([seed, index]).permutation(len(members))
        n = int(round(len(members) * fraction))
        carved[name] = sorted(p for i in order[:n] for p in members[i])
        rest[name] = sorted(p for i in order[n:] for p in members[i])
    return rest, carved


def one_split_per_image(
    sets: dict[str, dict[str, list[str]]],
    keys: dict[str, str],
    contradiction: str = "under several classes (contradicting labels); keep each image in "
    "one class folder",
) -> dict[str, dict[str, list[str]]]:
    """Move every copy of an image into the first split (train, validation, test) holding one,
    and warn about identical files in several strata: they appear ``contradiction``.

    Examples:
        >>> one_split_per_image({"train": {"c": ["a"]}, "test": {"c": ["b"]}}, {"a": 1, "b": 1})
        {'train': {'c': ['a', 'b']}, 'test': {'c': []}}
    """
    home: dict[str, str] = {}
    classes_of: dict[str, set[str]] = defaultdict(set)
    copies: dict[str, list[str]] = defaultdict(list)
    for split in SPLIT_NAMES:
        for name, paths in sorted(sets.get(split, {}).items()):
            for path in paths:
                home.setdefault(keys[path], split)
                classes_of[keys[path]].add(name)
                copies[keys[path]].append(path)
    unified = {split: {name: [] for name in by_class} for split, by_class in sets.items()}
    moved = 0
    for split, by_class in sets.items():
        for name, paths in by_class.items():
            for path in paths:
                target = home[keys[path]]
                moved += target != split
                unified[target].setdefault(name, []).append(path)
    for by_class in unified.values():
        for name in by_class:
            by_class[name].sort()
    if moved:
        logger.warning(
            "%d byte-identical cop(ies) of images in an earlier split were moved to that split, "
            "so that no image is in two splits.",
            moved,
        )
    conflicts = [sorted(copies[key]) for key, names in classes_of.items() if len(names) > 1]
    if conflicts:
        logger.warning(
            "%d image(s) appear, byte for byte, %s: %s",
            len(conflicts),
            contradiction,
            "; ".join(" = ".join(group) for group in conflicts),
        )
    return unified


def _warn_stray_folders(root: Path) -> None:
    stray = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in SPLIT_NAMES
    )
    if stray:
        logger.warning(
            "Ignoring folder(s) %s in %s: with train/ and validation/ present, only train/, "
            "validation/ and test/ are read.",
            ", ".join(f"{name}/" for name in stray),
            root,
        )


def split_files(
    path: str | os.PathLike,
    *,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = DEFAULT_SEED,
    exclude: Exclude = None,
) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """Decide, per file, which split each image belongs to; no image is read.

    Layouts: ``path/train/<class>`` + ``path/validation/<class>`` (+ optional
    ``path/test/<class>``; without it the test split is ``test_fraction`` of validation), or
    ``path/<class>`` split three ways (``validation_fraction`` and ``test_fraction`` of each
    class). The split is stratified by class and depends only on the file names and ``seed``.
    The files in ``exclude`` (see [`exclude_files`][catdog.data.files.exclude_files]) are
    dropped after the split is decided, so every other image keeps its split.

    Returns ``(class_names, {split: {class_name: [paths]}})``.

    Examples:
        ```python
        class_names, split = split_files("cats_and_dogs_filtered", seed=1)
        ```
    """
    check_fraction("test_fraction", test_fraction)
    check_fraction("validation_fraction", validation_fraction)
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise DatasetError(
            f"Data folder {str(root)!r} is a file, not a folder. Pass a folder with train/ and "
            "validation/ sub-folders, or one sub-folder per class."
        )
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Data folder {str(root)!r} does not exist. Pass a folder with train/ and "
            "validation/ sub-folders, or one sub-folder per class."
        )
    if (root / "train").is_dir():
        class_names, sets, keys = _presplit_sets(root, test_fraction, seed)
    else:
        class_names, sets, keys = _three_way_sets(root, validation_fraction, test_fraction, seed)
    return class_names, exclude_files(root, one_split_per_image(sets, keys), exclude)


def _presplit_sets(root: Path, test_fraction: float, seed: int):
    """``(class names, {split: {class: [paths]}}, content keys)`` of a ``train/`` +
    ``validation/`` (+ ``test/``) layout; without ``test/``, it is split off validation."""
    if not (root / "validation").is_dir():
        raise DatasetError(
            f"{str(root)!r} has train/ but no validation/ folder. Add validation/<class>/ "
            "folders, or pass the train/ folder itself to split it three ways."
        )
    _warn_stray_folders(root)
    class_names, train = scan_class_folders(root / "train")
    sets = {"train": train}
    for name in ("validation", "test"):
        if name == "test" and not (root / "test").is_dir():
            continue
        names, sets[name] = scan_class_folders(root / name)
        if names != class_names:
            raise DatasetError(
                f"train/ and {name}/ in {str(root)!r} have different class folders: "
                f"{class_names} vs {names}. Use the same class names in both."
            )
    keys = content_keys([p for by_class in sets.values() for c in by_class.values() for p in c])
    if "test" not in sets:
        sets["validation"], sets["test"] = split_off(sets["validation"], test_fraction, seed, keys)
    return class_names, sets, keys


def _three_way_sets(root: Path, validation_fraction: float, test_fraction: float, seed: int):
    """``(class names, {split: {class: [paths]}}, content keys)`` of a ``<class>/`` layout,
    split three ways."""
    class_names, everything = scan_class_folders(root)
    keys = content_keys([p for paths in everything.values() for p in paths])
    sets = split_three_ways(everything, validation_fraction, test_fraction, seed, keys)
    return class_names, sets, keys


def split_three_ways(
    files: dict[str, list[str]], validation_fraction: float, test_fraction: float, seed: int, keys
) -> dict[str, dict[str, list[str]]]:
    """``{split: {stratum: [paths]}}``: each stratum's files split in three, as
    [`split_off`][catdog.data.files.split_off] carves them (a fraction each for validation, test).

    Examples:
        >>> split_three_ways({"c": list("abcde")}, 0.2, 0.2, 1, {p: p for p in "abcde"})["train"]
        {'c': ['b', 'c', 'd']}
    """
    holdout = validation_fraction + test_fraction
    if holdout >= 1:
        raise InvalidArgumentError(
            "validation_fraction + test_fraction must be below 1 to leave training data, "
            f"got {validation_fraction} + {test_fraction}."
        )
    train, held = split_off(files, holdout, seed, keys)
    validation, test = split_off(held, test_fraction / holdout if holdout else 0, seed + 1, keys)
    return {"train": train, "validation": validation, "test": test}


# ----------------------------------------------------------------------------- exclusions
def exclude_files(
    root: str | os.PathLike, split_paths: dict[str, dict[str, list[str]]], exclude: Exclude
) -> dict[str, dict[str, list[str]]]:
    """``split_paths`` without the files ``exclude`` lists, from whichever split holds them.

    A listed path is absolute, relative to ``root`` (as ``audit.json`` writes them) or
    relative to the working folder. Nothing on disk changes. Logs how many files were left
    out, and warns about listed paths that match no image. A list that leaves out every
    image, or every training image of a class, raises
    [`DatasetError`][catdog.errors.DatasetError] (see
    [`check_class_images`][catdog.data.files.check_class_images]).

    Examples:
        ```python
        names, split = split_files("data")
        split = exclude_files("data", split, ["train/cats/cat.17.jpg"])
        ```
    """
    every = [p for by_class in split_paths.values() for paths in by_class.values() for p in paths]
    matched = excluded_paths(root, every, exclude)
    if not matched:
        return split_paths
    kept = {
        split: {
            name: [p for p in paths if os.path.abspath(p) not in matched]
            for name, paths in by_class.items()
        }
        for split, by_class in split_paths.items()
    }
    _check_what_is_left(Path(root), split_paths, kept, exclude)
    return kept


def _check_what_is_left(
    root: Path,
    before: dict[str, dict[str, list[str]]],
    after: dict[str, dict[str, list[str]]],
    exclude: Exclude,
) -> None:
    """Refuse an exclusion that leaves no image at all, or a class without training images."""
    source = (
        f"the exclude list {str(exclude)!r}"
        if isinstance(exclude, str | os.PathLike)
        else "the exclude= list"
    )
    count = sum(len(paths) for by_class in before.values() for paths in by_class.values())
    if not any(paths for by_class in after.values() for paths in by_class.values()):
        raise DatasetError(
            f"{source[0].upper()}{source[1:]} leaves out every image in {str(root)!r} (all "
            f"{count}): nothing is left to train on. Check that it lists only the images to "
            "leave out."
        )
    presplit = (root / "train").is_dir()  # as split_files tells the layouts apart
    for name, paths in before.get("train", {}).items():
        if paths:
            folder = root / "train" / name if presplit else root / name
            check_class_images(folder, after["train"][name], excluded_by=source)


_split_off, _one_split_per_image = split_off, one_split_per_image  # names before multi-label
