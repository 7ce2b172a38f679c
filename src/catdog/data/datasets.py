"""The tutorial's dataset, ``cats_and_dogs_filtered``: downloaded once, checked, split."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SEED,
    SPLIT_NAMES,
)
from catdog.data.download import (
    CATS_AND_DOGS_FOLDER,
    CATS_AND_DOGS_SIZE,
    CATS_AND_DOGS_URL,
    default_cache_dir,
    extract_once,
    fetch_archive,
)
from catdog.data.exclusions import Exclude
from catdog.data.pipelines import Splits, from_directory
from catdog.data.relabel import Relabel
from catdog.errors import InvalidArgumentError
from catdog.io import sha256sum

if TYPE_CHECKING:
    pass


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
    exclude: Exclude = None,
    decode: Sequence[str] = SPLIT_NAMES,
    relabel: Relabel = None,
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
        exclude: files to leave out of every split: a list of paths (absolute, or relative to
            the extracted ``cats_and_dogs_filtered`` folder), or an ``audit.json`` or text
            file listing them (see [`from_directory`][catdog.data.pipelines.from_directory]).
        decode: the splits whose images are decoded; the others are listed only, with no
            dataset (see [`build_splits`][catdog.data.pipelines.build_splits]). Defaults to
            all three.
        relabel: images to file under another class (see
            [`from_directory`][catdog.data.pipelines.from_directory]).

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
        exclude=exclude,
        decode=decode,
        relabel=relabel,
    )
