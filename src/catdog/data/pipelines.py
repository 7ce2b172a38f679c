"""Datasets from a split: each split's tf.data pipeline decodes every image once, in parallel,
caches the decoded pixels (memory by default, or a folder), batches and prefetches. Files that
do not decode and images over the pixel limit are skipped with one warning naming them."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import Counter
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
    check_choice,
    check_int,
    check_printable_class_names,
    check_sides,
)
from catdog.data.images import decode_image, image_size_problem
from catdog.errors import DatasetError, InvalidArgumentError
from catdog.io import file_lock

if TYPE_CHECKING:
    import tensorflow as tf


from catdog.data.exclusions import Exclude
from catdog.data.files import split_files
from catdog.data.relabel import Relabel, relabel_files

logger = logging.getLogger("catdog")


@dataclass
class Splits:
    """Train, validation and test datasets of one image collection, and how they were made.

    ``train``/``validation``/``test`` are batched ``tf.data.Dataset`` of ``(images, labels)``:
    float32 pixels in 0..255 of shape ``(batch, height, width, 3)`` and int32 class indices,
    or ``None`` for a split left undecoded (``decode=`` of
    [`build_splits`][catdog.data.pipelines.build_splits]). ``files[split]`` and
    ``labels[split]`` list each split's files and labels in dataset order (evaluation splits
    are not shuffled); ``skipped`` names the files left out and why.
    """

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    class_names: list[str]
    files: dict[str, list[str]]
    labels: dict[str, list[int]]
    image_size: tuple[int, int]
    batch_size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.files[s])}" for s in SPLIT_NAMES)
        return f"Splits(classes={self.class_names}, {sizes}, image_size={self.image_size})"


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
    decode: Sequence[str] = SPLIT_NAMES,
) -> Splits:
    """Turn a file-level split (see [`split_files`][catdog.data.files.split_files]) into datasets.

    Images over [`MAX_IMAGE_PIXELS`][catdog.data.images.MAX_IMAGE_PIXELS] and files that do not
    decode
    are skipped with one warning naming them.

    Args:
        class_names: the classes in label order: an image's label is its class's index here.
        split_paths: ``{split: {class_name: [paths]}}`` for each of ``"train"``,
            ``"validation"`` and ``"test"``, as [`split_files`][catdog.data.files.split_files]
            returns.
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
        decode: the splits whose images are decoded (default: all three). Another split's
            files are listed from their headers alone (those over the pixel limit left out,
            one that does not decode still listed) and its dataset is ``None``: for a caller
            that scores one split (``catdog evaluate``).

    Examples:
        ```python
        names, split = split_files("data")
        splits = build_splits(names, split, image_size=(96, 96))
        ```
    """
    image_size = check_sides("image_size", image_size, 2)
    check_int("batch_size", batch_size)
    for split in decode:
        check_choice("decode", split, SPLIT_NAMES)
    check_printable_class_names(class_names)
    _check_known_classes(class_names, {c for by_class in split_paths.values() for c in by_class})
    index = {name: i for i, name in enumerate(class_names)}
    datasets, files, labels, skipped = {}, {}, {}, []
    for split in SPLIT_NAMES:
        pairs = [(p, index[c]) for c in class_names for p in split_paths[split].get(c, [])]
        if split not in decode:
            files[split], labels[split], not_kept = _listed_split(pairs)
            skipped += not_kept
            datasets[split] = None
            continue
        ds, files[split], labels[split], not_kept = _decoded_split(pairs, image_size, cache, split)
        skipped += not_kept
        datasets[split] = _batch_pipeline(
            ds, batch_size=batch_size, shuffle=split == "train", seed=seed, size=len(files[split])
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


def _listed_split(pairs):
    """``(files, labels, skipped)`` of one split's ``(path, label)`` pairs, undecoded: only
    the files over the pixel limit (read from their headers) are left out."""
    too_large = {p: reason for p, _ in pairs if (reason := image_size_problem(p))}
    kept = [(p, label) for p, label in pairs if p not in too_large]
    return [p for p, _ in kept], [label for _, label in kept], list(too_large.items())


def _decoded_split(pairs, image_size, cache, split: str):
    """``(dataset of decoded images and labels, kept files, their labels, skipped)`` of one
    split's ``(path, label)`` pairs: files too large or not decodable are skipped, with why."""
    too_large = {p: reason for p, _ in pairs if (reason := image_size_problem(p))}
    skipped = list(too_large.items())
    pairs = [(p, label) for p, label in pairs if p not in too_large]
    paths = [p for p, _ in pairs]
    split_labels = [label for _, label in pairs]
    ds, kept = _decode_and_cache(paths, split_labels, image_size, cache, split)
    kept_set = set(kept.tolist())
    skipped += [(paths[i], "not a decodable image") for i in range(len(paths)) if i not in kept_set]
    files = [paths[i] for i in sorted(kept_set)]
    labels = [split_labels[i] for i in sorted(kept_set)]
    return ds, files, labels, skipped


def labelled_dataset(
    paths: Sequence[str],
    labels: Sequence[int],
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[tf.data.Dataset, list[str], list[int], list[tuple[str, str]]]:
    """One unshuffled batched dataset of ``(images, labels)`` of files, in the order given.

    Decoded as [`build_splits`][catdog.data.pipelines.build_splits] decodes (once, in
    parallel, cached in memory); files too large or not decodable are left out. Returns
    ``(dataset, kept files, their labels, skipped (path, reason) pairs)``.

    Examples:
        ```python
        dataset, files, labels, skipped = labelled_dataset(["a.jpg", "b.jpg"], [0, 1])
        ```
    """
    image_size = check_sides("image_size", image_size, 2)
    check_int("batch_size", batch_size)
    pairs = [(str(p), int(label)) for p, label in zip(paths, labels, strict=True)]
    ds, files, kept_labels, skipped = _decoded_split(pairs, image_size, None, "all")
    dataset = _batch_pipeline(ds, batch_size=batch_size, shuffle=False, seed=0, size=len(files))
    return dataset, files, kept_labels, skipped


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
    exclude: Exclude = None,
    decode: Sequence[str] = SPLIT_NAMES,
    relabel: Relabel = None,
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
        exclude: files to leave out of every split (the folder is not touched): a list of
            paths (absolute, or relative to ``path``), or the path of an ``audit.json``
            written by [`catdog.audit`][catdog.training.audit.audit] (its ``"exclude"`` list)
            or of a text file with one path a line. Every other image keeps its split.
            Defaults to `None` (none).
        decode: the splits whose images are decoded; the others are listed only, with no
            dataset (see [`build_splits`][catdog.data.pipelines.build_splits]). Defaults to
            all three.
        relabel: images to file under another class than their folder's, in their split (the
            folder is not touched): a ``{path: class}`` map or a review page's decisions.json
            (see [`relabel_files`][catdog.data.relabel.relabel_files]). Defaults to `None`.

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
        path,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        exclude=exclude,
    )
    split_paths = relabel_files(path, split_paths, relabel)
    return build_splits(
        folder_classes if class_names is None else list(class_names),
        split_paths,
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        cache=cache,
        decode=decode,
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
        check_choice("split", split, data.labels)
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


def data_folder(splits: Splits) -> str:
    """The folder of a [`Splits`][catdog.data.pipelines.Splits]' files, absolute: the folder holding
    all of them (every split's)."""
    every = [os.path.abspath(p) for files in splits.files.values() for p in files]
    return os.path.commonpath(every) if every else os.path.abspath(".")
