"""Dataset builders: a leak-free per-file split, then fast tf.data pipelines.

The split is a list of files per split, decided before any tensor exists (so it can be
audited: ``splits.files["test"]``). Byte-identical files are found by content and kept in one
split. Each split's pipeline decodes every image once, in parallel, caches the decoded pixels
(memory by default), and prefetches. Files that do not decode, images over
``catdog.inference.MAX_IMAGE_PIXELS`` and file names that are not valid UTF-8 are found before
training and skipped with one warning naming them.

EXIF orientation is not applied, in training and in prediction alike (both use TensorFlow's
decoders), so the two always agree; rotate such photos on disk if their orientation matters.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SEED,
    SPLIT_NAMES,
    check_fraction,
    check_int,
    check_printable_class_names,
    check_sides,
    has_control_characters,
)
from catdog.download import (
    CATS_AND_DOGS_FOLDER,
    CATS_AND_DOGS_SIZE,
    CATS_AND_DOGS_URL,
    default_cache_dir,
    extract_once,
    fetch_archive,
)
from catdog.errors import DatasetError, DatasetNotFoundError, InvalidArgumentError
from catdog.inference import decode_image, image_size_problem
from catdog.io import file_lock, sha256sum

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger("catdog")

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")


@dataclass
class Splits:
    """Train, validation and test datasets of one image collection, and how they were made.

    ``train``/``validation``/``test`` are batched ``tf.data.Dataset`` of ``(images, labels)``:
    float32 pixels in 0..255 of shape ``(batch, height, width, 3)`` and int32 class indices.
    ``files[split]`` and ``labels[split]`` list each split's files and labels in dataset order
    (evaluation splits are not shuffled); ``skipped`` names the files left out and why.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    files: dict[str, list[str]]
    labels: dict[str, list[int]]
    image_size: tuple[int, int]
    batch_size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.files[s])}" for s in SPLIT_NAMES)
        return f"Splits(classes={self.class_names}, {sizes}, image_size={self.image_size})"


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
        if not images:
            raise DatasetError(
                f"Class folder {str(class_dir)!r} contains no images "
                f"({', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder."
            )
        files[class_dir.name] = images
    if undecodable_names:
        logger.warning(
            "Skipped %d file(s) whose names are not valid UTF-8 (rename them to use them): %s",
            len(undecodable_names),
            ", ".join(ascii(p) for p in undecodable_names),
        )
    return [p.name for p in class_dirs], files


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


def _split_off(
    files: dict[str, list[str]], fraction: float, seed: int, keys: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Split each class's files into (rest, carved) with ``fraction`` carved, reproducibly.

    Byte-identical files of a class (same key) are carved together, as one image.
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


def _one_split_per_image(
    sets: dict[str, dict[str, list[str]]], keys: dict[str, str]
) -> dict[str, dict[str, list[str]]]:
    """Move every copy of an image into the first split (train, validation, test) holding one.

    Also warns about identical files under several classes: their labels contradict.
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
            "%d image(s) appear, byte for byte, under several classes (contradicting labels); "
            "keep each image in one class folder: %s",
            len(conflicts),
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
) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """Decide, per file, which split each image belongs to; no image is read.

    Layouts: ``path/train/<class>`` + ``path/validation/<class>`` (+ optional
    ``path/test/<class>``; without it the test split is ``test_fraction`` of validation), or
    ``path/<class>`` split three ways (``validation_fraction`` and ``test_fraction`` of each
    class). The split is stratified by class and depends only on the file names and ``seed``.

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
            sets["validation"], sets["test"] = _split_off(
                sets["validation"], test_fraction, seed, keys
            )
    else:
        class_names, everything = scan_class_folders(root)
        holdout = validation_fraction + test_fraction
        if holdout >= 1:
            raise InvalidArgumentError(
                "validation_fraction + test_fraction must be below 1 to leave training data, "
                f"got {validation_fraction} + {test_fraction}."
            )
        keys = content_keys([p for paths in everything.values() for p in paths])
        train, held = _split_off(everything, holdout, seed, keys)
        validation, test = _split_off(
            held, test_fraction / holdout if holdout else 0, seed + 1, keys
        )
        sets = {"train": train, "validation": validation, "test": test}
    return class_names, _one_split_per_image(sets, keys)


# ----------------------------------------------------------------------------- pipelines
def _cache_target(cache: str | os.PathLike | None, split: str, paths: list[str], size) -> str:
    """A cache file name keyed on the files, their sizes and modification times, and size."""
    if cache in (None, "memory"):
        return ""
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    stats = [(p, (st := os.stat(p)).st_size, st.st_mtime_ns) for p in paths]
    key = hashlib.sha256(repr((stats, tuple(size))).encode()).hexdigest()[:16]
    return str(folder / f"{split}-{key}.tfcache")


def _clear_abandoned_cache(target: str) -> None:
    """Remove what a process killed while writing the cache ``target`` left behind."""
    folder, stem = Path(target).parent, Path(target).name
    leftovers = [*folder.glob(f"{stem}_*.lockfile"), *folder.glob(f"{stem}_*.tempstate*")]
    if leftovers:
        logger.warning("Removing an unfinished dataset cache left by a killed run: %s", target)
        for path in leftovers:
            path.unlink(missing_ok=True)


def _decode_and_cache(paths, labels, image_size, cache, split):
    """Decode once (parallel), drop undecodable files, cache; return (dataset, kept indices)."""
    import tensorflow as tf

    if not paths:  # an empty split needs no decoder
        empty = np.zeros((0, *image_size, 3), np.uint8)
        ds = tf.data.Dataset.from_tensor_slices(
            (empty, np.zeros(0, np.int32), np.zeros(0, np.int32))
        )
        return ds, np.zeros(0, np.int32)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32), tf.range(len(paths)))
    )

    def decode(path, label, index):
        return decode_image(tf.io.read_file(path), image_size), label, index

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    target = _cache_target(cache, split, paths, image_size)
    ds = ds.ignore_errors().cache(target)
    # This first pass decodes every image (filling the cache) and tells which files failed.
    # A file cache is filled by one process at a time; the lock dies with its process, so
    # leftovers found while holding it were abandoned by a killed run.
    with file_lock(target + ".lock") if target else contextlib.nullcontext():
        if target:
            _clear_abandoned_cache(target)
        kept = np.concatenate(
            [idx for idx in ds.map(lambda _i, _l, idx: idx).batch(4096).as_numpy_iterator()]
            or [np.zeros(0, np.int32)]
        )
    return ds, kept


def _batch_pipeline(ds, *, batch_size, shuffle, seed, size):
    import tensorflow as tf

    ds = ds.apply(tf.data.experimental.assert_cardinality(size))  # known length for Keras
    ds = ds.map(lambda image, label, _idx: (image, label))
    if shuffle:  # shuffle the compact uint8 images, then cast whole batches
        ds = ds.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda images, labels: (tf.cast(images, tf.float32), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def build_splits(
    class_names: Sequence[str],
    split_paths: dict[str, dict[str, list[str]]],
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    cache: str | os.PathLike | None = "memory",
) -> Splits:
    """Turn a file-level split (see [`split_files`][catdog.data.split_files]) into datasets.

    Images over [`MAX_IMAGE_PIXELS`][catdog.inference.MAX_IMAGE_PIXELS] and files that do not decode
    are skipped with one warning naming them.

    Args:
        class_names: the classes in label order: an image's label is its class's index here.
        split_paths: ``{split: {class_name: [paths]}}`` for each of ``"train"``,
            ``"validation"`` and ``"test"``, as [`split_files`][catdog.data.split_files] returns.
            It may hold a subset of ``class_names`` (an evaluation folder without every class)
            but no other class.
        image_size: ``(height, width)`` in pixels, positive integers: every image is resized
            to it (bilinear, without keeping its aspect ratio).
        batch_size: images per batch, a positive integer.
        seed: seeds the shuffling of the training split (reshuffled each epoch); evaluation
            splits are not shuffled.
        cache: where the decoded images are cached: ``"memory"`` (or ``None``), or a folder
            (created if needed) for tf.data cache files, keyed on the files' names, sizes and
            modification times and on ``image_size``, so changed images are decoded again.

    Examples:
        ```python
        names, split = split_files("data")
        splits = build_splits(names, split, image_size=(96, 96))
        ```
    """
    image_size = check_sides("image_size", image_size, 2)
    check_int("batch_size", batch_size)
    check_printable_class_names(class_names)
    _check_known_classes(class_names, {c for by_class in split_paths.values() for c in by_class})
    index = {name: i for i, name in enumerate(class_names)}
    datasets, files, labels, skipped = {}, {}, {}, []
    for split in SPLIT_NAMES:
        pairs = [(p, index[c]) for c in class_names for p in split_paths[split].get(c, [])]
        too_large = {p: reason for p, _ in pairs if (reason := image_size_problem(p))}
        skipped += list(too_large.items())
        pairs = [(p, label) for p, label in pairs if p not in too_large]
        paths = [p for p, _ in pairs]
        split_labels = [label for _, label in pairs]
        ds, kept = _decode_and_cache(paths, split_labels, image_size, cache, split)
        kept_set = set(kept.tolist())
        skipped += [
            (paths[i], "not a decodable image") for i in range(len(paths)) if i not in kept_set
        ]
        files[split] = [paths[i] for i in sorted(kept_set)]
        labels[split] = [split_labels[i] for i in sorted(kept_set)]
        datasets[split] = _batch_pipeline(
            ds, batch_size=batch_size, shuffle=split == "train", seed=seed, size=len(kept)
        )
    if skipped:
        logger.warning(
            "Skipped %d file(s): %s",
            len(skipped),
            "; ".join(f"{path} ({reason})" for path, reason in skipped),
        )
    if not files["train"]:
        raise DatasetError("No training image could be decoded; check the data folder.")
    return Splits(
        train=datasets["train"],
        validation=datasets["validation"],
        test=datasets["test"],
        class_names=list(class_names),
        files=files,
        labels=labels,
        image_size=image_size,
        batch_size=batch_size,
        skipped=skipped,
    )


def _check_known_classes(class_names: Sequence[str], found: set[str]) -> None:
    import difflib

    unknown = sorted(found - set(class_names))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, class_names, n=1) or [
                c for c in class_names if c.lower() == name.lower()
            ]
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise DatasetError(
            f"Class folder(s) {', '.join(hints)} are not among the classes {list(class_names)}. "
            "Rename the folders to the model's class names, or remove the ones it was not "
            "trained on."
        )


def check_split_sizes(splits: Splits, needed: Sequence[str] = SPLIT_NAMES) -> None:
    """Raise a clear error when one of the ``needed`` splits holds no image.

    Examples:
        ```python
        check_split_sizes(splits, ("train", "validation"))
        ```
    """
    counts = {split: len(splits.files[split]) for split in SPLIT_NAMES}
    empty = [split for split in needed if counts[split] == 0]
    if empty:
        per_class = label_counts(splits, "train")
        raise DatasetError(
            f"The {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
            f"({', '.join(f'{s}: {n}' for s, n in counts.items())} images; training images per "
            f"class: {per_class}). Add images: with the default fractions (20% validation, 20% "
            "test) each class needs at least 5 images for every split to get one, and a few "
            "dozen for scores that mean something; or add validation/ and test/ folders."
        )


def from_directory(
    path: str | os.PathLike,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    cache: str | os.PathLike | None = "memory",
    class_names: Sequence[str] | None = None,
) -> Splits:
    """Build leak-free train/validation/test datasets from an image folder.

    Images of any size and of the formats BMP, GIF, JPEG, PNG, WebP (grayscale, RGBA and CMYK
    too) become RGB arrays; files that do not decode are skipped with a warning.

    Args:
        path: the image folder: ``train/<class>/`` and ``validation/<class>/`` sub-folders
            (plus ``test/<class>/``, optional), or one sub-folder per class, split three ways.
        image_size: ``(height, width)`` in pixels, positive integers: every image is resized
            to it (bilinear, without keeping its aspect ratio).
        batch_size: images per batch, a positive integer.
        seed: decides, with the file names, which split each image goes to, and seeds the
            shuffling of the training split.
        test_fraction: the share, in ``[0, 1)``, of the validation images (``train/`` and
            ``validation/`` without ``test/``) or of each class's images (one sub-folder per
            class) that becomes the test split; unused when ``test/`` exists.
        validation_fraction: the share, in ``[0, 1)``, of each class's images that becomes the
            validation split, with one sub-folder per class (``validation_fraction +
            test_fraction`` must be below 1); unused with a ``validation/`` folder.
        cache: where the decoded images are cached: ``"memory"`` (or ``None``), or a folder
            (created if needed) for tf.data cache files, keyed on the files' names, sizes and
            modification times, so changed images are decoded again.
        class_names: fixes the label order (a trained model's classes, to evaluate it on a
            folder): every class folder must be one of them, matched by name. Defaults to
            `None` (the class folder names, sorted).

    Examples:
        ```python
        splits = from_directory("cats_and_dogs_filtered", image_size=(160, 160))
        splits.class_names
        # ['cats', 'dogs']
        len(set(splits.files["validation"]) & set(splits.files["test"]))
        # 0
        ```
    """
    folder_classes, split_paths = split_files(
        path, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    return build_splits(
        folder_classes if class_names is None else list(class_names),
        split_paths,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        cache=cache,
    )


def load_cats_and_dogs(
    cache_dir: str | os.PathLike | None = None,
    *,
    origin: str = CATS_AND_DOGS_URL,
    file_hash: str | None = None,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    test_fraction: float = 0.2,
    cache: str | os.PathLike | None = "memory",
) -> Splits:
    """Download ``cats_and_dogs_filtered.zip`` once, extract it once, and return its splits.

    The archive is checked before it is used, and the extracted folder is tied to the archive
    it came from (a new archive is extracted again).

    Args:
        cache_dir: the folder whose ``datasets/`` sub-folder holds the archive and the
            extracted images. Defaults to `None` (the Keras cache: ``$KERAS_HOME`` or
            ``~/.keras``).
        origin: the URL of the archive; a custom one (a mirror, a ``file://`` URL) needs
            ``file_hash``.
        file_hash: the SHA-256 (hex digits) the archive must have. Defaults to `None`: the
            archive of the default ``origin`` is checked against its known size (68,606,236
            bytes).
        image_size: ``(height, width)`` in pixels, positive integers: every image is resized
            to it (bilinear, without keeping its aspect ratio).
        batch_size: images per batch, a positive integer.
        seed: decides which validation images go to the test split, and seeds the shuffling
            of the training split.
        test_fraction: the share, in ``[0, 1)``, of the validation images that becomes the test
            split, disjoint from validation.
        cache: where the decoded images are cached: ``"memory"`` (or ``None``), or a folder
            (created if needed) for tf.data cache files, keyed on the files' names, sizes and
            modification times, so changed images are decoded again.

    Examples:
        ```python
        splits = load_cats_and_dogs()
        [len(splits.files[s]) for s in ("train", "validation", "test")]
        # [2000, 800, 200]
        ```
    """
    if origin != CATS_AND_DOGS_URL and not file_hash:
        raise InvalidArgumentError(
            f"A custom origin ({origin}) needs file_hash=, the SHA-256 of the archive it "
            "serves (e.g. `sha256sum cats_and_dogs_filtered.zip`): without it catdog cannot "
            "tell a good download from a wrong one."
        )
    datasets_dir = Path(cache_dir or default_cache_dir()) / "datasets"
    archive = fetch_archive(
        origin,
        CATS_AND_DOGS_FOLDER + ".zip",
        datasets_dir,
        expected_size=None if file_hash else CATS_AND_DOGS_SIZE,
        file_hash=file_hash,
    )
    folder = extract_once(
        archive,
        datasets_dir,
        CATS_AND_DOGS_FOLDER,
        archive_hash=(file_hash or sha256sum(archive)).lower(),
    )
    return from_directory(
        folder,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        test_fraction=test_fraction,
        cache=cache,
    )


# ----------------------------------------------------------------------------- statistics
def label_counts(data, split: str = "train") -> dict:
    """Count the labels of a split (``Splits``) or of any ``(images, labels)`` dataset.

    With ``Splits`` the keys are class names, read from the file lists without decoding;
    with a dataset they are the label integers.

    Examples:
        ```python
        label_counts(splits)
        # {'cats': 1000, 'dogs': 1000}
        ```
    """
    if isinstance(data, Splits):
        if split not in data.labels:
            raise InvalidArgumentError(f"split must be one of {SPLIT_NAMES}, got {split!r}.")
        counts = Counter(data.labels[split])
        return {name: counts.get(i, 0) for i, name in enumerate(data.class_names)}
    counts = Counter()
    for _, labels in data:
        counts.update(np.asarray(labels).reshape(-1).tolist())
    return dict(sorted(counts.items()))


def majority_baseline(data, split: str = "train") -> float:
    """Accuracy of always guessing the most frequent label, as a fraction (the tutorial's 50%).

    Examples:
        ```python
        majority_baseline(splits)
        # 0.5
        ```
    """
    counts = label_counts(data, split) if not isinstance(data, dict) else data
    total = sum(counts.values())
    if total == 0:
        raise InvalidArgumentError("majority_baseline needs at least one labelled example.")
    return max(counts.values()) / total
