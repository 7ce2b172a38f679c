"""A run's data: the synthetic demo set, and the splits of ``catdog train``'s ``--data``
(``cats_and_dogs``, downloaded, or an image folder)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from catdog._rules import SPLIT_NAMES
from catdog.data import pipelines
from catdog.data.datasets import load_cats_and_dogs
from catdog.data.download import default_cache_dir
from catdog.data.synthetic import make_synthetic_dataset
from catdog.io import file_lock
from catdog.runs.config import RunConfig


def demo_data(images_per_class: int = 200, image_size: int = 64) -> Path:
    """Generate (once) the synthetic demo dataset in the Keras cache and return its folder.

    Concurrent callers wait for each other: the dataset is generated once.
    """
    folder = default_cache_dir() / "datasets" / f"catdog-demo-{images_per_class}-{image_size}"
    if folder.is_dir():
        return folder
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if not folder.is_dir():  # not made by a process we waited for
            tmp = Path(tempfile.mkdtemp(prefix=".catdog-demo-", dir=folder.parent))
            try:
                make_synthetic_dataset(tmp, images_per_class, (image_size, image_size), seed=0)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_data(config: RunConfig):
    """Splits for ``config.data``: ``cats_and_dogs`` (downloaded) or a folder."""
    size = (config.image_size, config.image_size)
    return load_splits(
        config.data, size, config.batch_size, config.seed, exclude=config.exclude,
        relabel=config.relabel,
    )  # fmt: skip


def load_splits(
    data: str,
    image_size: tuple,
    batch_size: int,
    seed: int,
    class_names=None,
    exclude=None,
    cache="memory",
    decode=SPLIT_NAMES,
    relabel=None,
):
    """Splits of ``data``: ``cats_and_dogs`` (downloaded) or an image folder (its class
    folders mapped to ``class_names``, in order, when given), without the files ``exclude``
    lists, the images ``relabel`` maps filed under their new class, the decoded images of
    the ``decode`` splits cached in ``cache`` (memory, or a folder) (see
    [`from_directory`][catdog.data.pipelines.from_directory]).

    Examples:
        ```python
        splits = load_splits("data/pets", (160, 160), batch_size=32, seed=1337)
        ```
    """
    options = dict(
        image_size=image_size,
        batch_size=batch_size,
        seed=seed,
        exclude=exclude,
        cache=cache,
        decode=decode,
        relabel=relabel,
    )
    if data == "cats_and_dogs":
        return load_cats_and_dogs(**options)
    return pipelines.from_directory(data, class_names=class_names, **options)
