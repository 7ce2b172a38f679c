"""Decoding a split's files once: a tf.data pipeline that reads and decodes every image in
parallel, drops the files that do not decode, and caches the pixels (in memory, or in a file
cache keyed on the files and written by one process at a time). Labels travel with the
pixels: class indices (int32), or multi-hot rows (float32) for multi-label data."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog.data.images import decode_image
from catdog.io import file_lock

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger("catdog")


def cache_target(cache: str | os.PathLike | None, split: str, paths: list[str], size) -> str:
    """A cache file name keyed on the files, their sizes and modification times, and size;
    ``""`` for a cache in memory.

    Examples:
        >>> cache_target("memory", "train", ["a.jpg"], (16, 16))
        ''
    """
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


def label_array(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """The labels as a dataset holds them: class indices as int32, or a ``(files, classes)``
    array of multi-hot rows as float32.

    Examples:
        >>> label_array([0, 1]).dtype, label_array([[1, 0], [1, 1]]).dtype
        (dtype('int32'), dtype('float32'))
    """
    if np.ndim(labels) == 2:
        return np.asarray(labels, np.float32)
    return np.asarray(labels, np.int32)


def multi_hot_rows(shown: Sequence[Sequence[int]], classes: int) -> np.ndarray:
    """``(files, classes)`` float32 of 0/1 from each file's class indices (empty: none).

    Examples:
        >>> multi_hot_rows([(0, 1), (), (1,)], 2).tolist()
        [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]]
    """
    rows = np.zeros((len(shown), classes), np.float32)
    for row, indices in enumerate(shown):
        rows[row, list(indices)] = 1.0
    return rows


def decode_and_cache(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    image_size: tuple[int, int],
    cache: str | os.PathLike | None,
    split: str,
) -> tuple[tf.data.Dataset, np.ndarray]:
    """Decode once (parallel), drop undecodable files, cache; return ``(dataset of (image,
    label, index), kept indices)``. ``labels`` are class indices, or ``(files, classes)``
    multi-hot rows (see [`label_array`][catdog.data.decode_cache.label_array]).

    Examples:
        ```python
        ds, kept = decode_and_cache(["a.jpg", "b.jpg"], [0, 1], (16, 16), "memory", "train")
        ```
    """
    import tensorflow as tf

    labels = label_array(labels)
    if not paths:  # an empty split needs no decoder
        empty = np.zeros((0, *image_size, 3), np.uint8)
        ds = tf.data.Dataset.from_tensor_slices((empty, labels, np.zeros(0, np.int32)))
        return ds, np.zeros(0, np.int32)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels), tf.range(len(paths)))
    )

    def decode(path, label, index):
        return decode_image(tf.io.read_file(path), image_size), label, index

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    target = cache_target(cache, split, paths, image_size)
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
