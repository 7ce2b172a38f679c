"""Datasets from a split: each split's tf.data pipeline decodes every image once, in parallel,
caches the decoded pixels (memory by default, or a folder), batches and prefetches. Files that
do not decode and images over the pixel limit are skipped with one warning naming them."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from catdog.data.decode_cache import cache_target, decode_and_cache, multi_hot_rows
from catdog.data.images import image_size_problem
from catdog.errors import DatasetError, InvalidArgumentError

if TYPE_CHECKING:
    import tensorflow as tf


from catdog.data.exclusions import Exclude
from catdog.data.files import split_files
from catdog.data.relabel import Relabel, relabel_files

logger = logging.getLogger("catdog")

NO_LABEL = "(no label)"
"""The key, in [`label_counts`][catdog.data.pipelines.label_counts] of multi-label data, of
the photos that show no class."""


@dataclass
class Splits:
    """Train, validation and test datasets of one image collection, and how they were made.

    ``train``/``validation``/``test`` are batched ``tf.data.Dataset`` of ``(images, labels)``:
    float32 pixels in 0..255 of shape ``(batch, height, width, 3)`` and int32 class indices,
    or ``None`` for a split left undecoded (``decode=`` of
    [`build_splits`][catdog.data.pipelines.build_splits]). ``files[split]`` and
    ``labels[split]`` list each split's files and labels in dataset order (evaluation splits
    are not shuffled); ``skipped`` names the files left out and why. With ``multi_label``
    (see [`from_label_table`][catdog.data.multilabel.from_label_table]) a label is a tuple of
    class indices (empty: no class) and the datasets yield float32 multi-hot ``(batch,
    classes)``.
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
    multi_label: bool = False

    def multi_hot(self, split: str) -> np.ndarray:
        """``(files, classes)`` float32 of 0/1 of a split's files in dataset order, 1 where a
        file shows the class (one-hot rows for single-label data).

        Examples:
            ```python
            splits.multi_hot("validation").sum(axis=0)  # positives per class
            ```
        """
        check_choice("split", split, self.labels)
        shown = self.labels[split] if self.multi_label else [(i,) for i in self.labels[split]]
        return multi_hot_rows(shown, len(self.class_names))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.files[s])}" for s in SPLIT_NAMES)
        return f"Splits(classes={self.class_names}, {sizes}, image_size={self.image_size})"


# ----------------------------------------------------------------------------- pipelines
def batch_pipeline(
    ds: tf.data.Dataset, *, batch_size: int, shuffle: bool, seed: int, size: int
) -> tf.data.Dataset:
    """Batches of ``(float32 images, labels)`` of ``size`` decoded ``(image, label, index)``
    (see [`decode_and_cache`][catdog.data.decode_cache.decode_and_cache]), shuffled or not.

    Examples:
        ```python
        train = batch_pipeline(ds, batch_size=32, shuffle=True, seed=1, size=len(files))
        ```
    """
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
        ds, files[split], labels[split], not_kept = decoded_split(pairs, image_size, cache, split)
        skipped += not_kept
        datasets[split] = batch_pipeline(
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


def decoded_split(
    pairs: list[tuple[str, int | tuple[int, ...]]],
    image_size: tuple[int, int],
    cache: str | os.PathLike | None,
    split: str,
    classes: int | None = None,
) -> tuple[tf.data.Dataset, list[str], list, list[tuple[str, str]]]:
    """``(dataset of decoded images and labels, kept files, their labels, skipped)`` of one
    split's ``(path, label)`` pairs: files too large or not decodable are skipped, with why.
    With ``classes`` (their number), a label is a tuple of class indices and the dataset
    holds multi-hot rows.

    Examples:
        ```python
        ds, files, labels, skipped = decoded_split([("a.jpg", (0, 1))], (16, 16), None, "x", 2)
        ```
    """
    too_large = {p: reason for p, _ in pairs if (reason := image_size_problem(p))}
    skipped = list(too_large.items())
    pairs = [(p, label) for p, label in pairs if p not in too_large]
    paths = [p for p, _ in pairs]
    split_labels = [label for _, label in pairs]
    rows = split_labels if classes is None else multi_hot_rows(split_labels, classes)
    ds, kept = decode_and_cache(paths, rows, image_size, cache, split)
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
    ds, files, kept_labels, skipped = decoded_split(pairs, image_size, None, "all")
    dataset = batch_pipeline(ds, batch_size=batch_size, shuffle=False, seed=0, size=len(files))
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
    with a dataset they are the label integers. Multi-label ``Splits`` count each class's
    positives, and the photos that show none under ``"(no label)"``; a dataset of multi-hot
    labels is refused.

    Examples:
        ```python
        label_counts(splits)
        # {'cats': 1000, 'dogs': 1000}
        ```
    """
    if isinstance(data, Splits):
        check_choice("split", split, data.labels)
        shown = data.labels[split]
        counts = Counter(i for s in shown for i in s) if data.multi_label else Counter(shown)
        found = {name: counts.get(i, 0) for i, name in enumerate(data.class_names)}
        return {**found, NO_LABEL: sum(not s for s in shown)} if data.multi_label else found
    counts = Counter()
    for _, labels in data:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise InvalidArgumentError(
                "label_counts got a dataset of multi-hot labels: pass the Splits instead, "
                "whose counts are the positives of each class."
            )
        counts.update(labels.reshape(-1).tolist())
    return dict(sorted(counts.items()))


def majority_baseline(data, split: str = "train") -> float:
    """Accuracy of always guessing the most frequent label, as a fraction (the tutorial's 50%).

    For multi-label ``Splits``: the share of photos whose label set is exactly the most
    common one (the exact-match accuracy of always answering it).

    Examples:
        ```python
        majority_baseline(splits)
        # 0.5
        ```
    """
    if isinstance(data, Splits) and data.multi_label:
        check_choice("split", split, data.labels)
        counts = Counter(data.labels[split])
    else:
        counts = label_counts(data, split) if not isinstance(data, dict) else data
    if NO_LABEL in counts:
        raise InvalidArgumentError(
            "majority_baseline got multi-label counts (positives per class): pass the Splits, "
            "whose baseline is the most common label set."
        )
    total = sum(counts.values())
    if total == 0:
        raise InvalidArgumentError("majority_baseline needs at least one labelled example.")
    return max(counts.values()) / total


def data_folder(splits: Splits) -> str:
    """The folder of a [`Splits`][catdog.data.pipelines.Splits]' files, absolute: the folder holding
    all of them (every split's)."""
    every = [os.path.abspath(p) for files in splits.files.values() for p in files]
    return os.path.commonpath(every) if every else os.path.abspath(".")


_cache_target, _decode_and_cache = cache_target, decode_and_cache  # where they were before
