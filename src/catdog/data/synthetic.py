"""Generated image datasets: the offline stand-in for cats_and_dogs_filtered, and a
multi-label one (photos showing cats, dogs, both or neither) with its labels file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catdog._rules import check_int
from catdog.data.label_table import LIST_SEPARATOR
from catdog.errors import InvalidArgumentError

CLASS_NAMES = ("cats", "dogs")

MULTILABEL_SETS = ((("cats",), (0,)), (("dogs",), (1,)), (("cats", "dogs"), (0, 1)), ((), (2,)))
"""The label sets of [`make_multilabel_dataset`][catdog.data.synthetic.make_multilabel_dataset]
and the shapes that show them: blobs, bars, both, and green triangles alone for no label."""


def _draw(rng: np.random.Generator, label: int | tuple[int, ...], size: tuple[int, int]):
    """One RGB image: warm round blobs for 'cats', cool bars for 'dogs', green triangles for the
    held-out kind (label 2, see ``make_unknown_images``), on a noisy field. A tuple of labels
    draws their shapes in turn (at least one of each of two)."""
    from PIL import Image, ImageDraw, ImageFilter

    height, width = size
    background = rng.integers(60, 190, size=3)
    noise = rng.normal(0, 25, size=(height // 8 + 1, width // 8 + 1, 3))
    field = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(field).resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    kinds = (label,) if isinstance(label, int) else tuple(label)
    for shape in range(int(rng.integers(2, 5))):
        kind = kinds[shape % len(kinds)]
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        r = rng.uniform(0.08, 0.2) * min(height, width)
        if kind == 2:  # green triangles: a kind of image neither class shows
            color = (
                int(rng.integers(0, 90)),
                int(rng.integers(170, 256)),
                int(rng.integers(0, 90)),
            )
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
        elif kind == 0:  # warm ellipses
            color = (
                int(rng.integers(190, 256)),
                int(rng.integers(70, 150)),
                int(rng.integers(0, 70)),
            )
            draw.ellipse([cx - r, cy - 0.7 * r, cx + r, cy + 0.7 * r], fill=color)
        else:  # cool bars
            color = (
                int(rng.integers(0, 70)),
                int(rng.integers(90, 170)),
                int(rng.integers(190, 256)),
            )
            draw.rectangle([cx - 1.3 * r, cy - 0.35 * r, cx + 1.3 * r, cy + 0.35 * r], fill=color)
    return image.filter(ImageFilter.GaussianBlur(radius=0.6))


def make_unknown_images(
    path: str | os.PathLike,
    count: int = 20,
    image_size: tuple[int, int] = (160, 160),
    seed: int = 0,
) -> list[Path]:
    """Write ``count`` JPEG images of a kind neither synthetic class shows (green triangles on
    the same noisy field) into ``path``: the held-out kind that a model trained on
    [`make_synthetic_dataset`][catdog.data.synthetic.make_synthetic_dataset] should answer
    ``unknown``. Returns the files.

    Examples:
        ```python
        files = make_unknown_images("/tmp/catdog-unknown", count=10, image_size=(64, 64))
        ```
    """
    check_int("count", count)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = [folder / f"other.{i}.jpg" for i in range(count)]
    for file in files:
        _draw(rng, 2, tuple(image_size)).save(file, quality=90)
    return files


def make_synthetic_dataset(
    path: str | os.PathLike,
    images_per_class: int = 100,
    image_size: tuple[int, int] = (160, 160),
    seed: int = 0,
    *,
    validation_per_class: int | None = None,
    mixed_sizes: bool = False,
) -> Path:
    """Write a small two-class JPEG dataset in the cats_and_dogs_filtered layout.

    The images go to ``path/train/{cats,dogs}/`` and ``path/validation/{cats,dogs}/``.
    "cats" show warm round blobs and "dogs" cool bars on a noisy background: a difference a
    small CNN learns in a few epochs, whatever the seed. Existing files of the same names are
    replaced. Returns ``Path(path)``.

    Args:
        path: the dataset's root folder, created if needed.
        images_per_class: training images per class, a positive integer.
        image_size: ``(height, width)`` of the images in pixels, integers of at least 8.
        seed: the seed of the generator: the same seed writes the same images.
        validation_per_class: validation images per class. Defaults to `None` (half of
            ``images_per_class``, at least 1).
        mixed_sizes: vary the images' sizes: each image's height and width are ``image_size``'s
            times a random factor between 0.6 and 1.6, drawn for each side.

    Examples:
        ```python
        root = make_synthetic_dataset("/tmp/catdog-demo", images_per_class=50)
        sorted(p.name for p in (root / "train").iterdir())
        # ['cats', 'dogs']
        ```
    """
    check_int("images_per_class", images_per_class)
    if validation_per_class is None:
        validation_per_class = max(1, images_per_class // 2)
    size = tuple(image_size)
    if len(size) != 2 or any(not isinstance(d, int) or d < 8 for d in size):
        raise InvalidArgumentError(f"image_size must be (height, width) >= 8, got {image_size!r}.")
    root = Path(path)
    rng = np.random.default_rng(seed)
    for split, count in (("train", images_per_class), ("validation", validation_per_class)):
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                if mixed_sizes:
                    scale = rng.uniform(0.6, 1.6, size=2)
                    this_size = (int(size[0] * scale[0]), int(size[1] * scale[1]))
                else:
                    this_size = size
                _draw(rng, label, this_size).save(folder / f"{name[:-1]}.{i}.jpg", quality=90)
    return root


def make_multilabel_dataset(
    path: str | os.PathLike,
    images: int = 80,
    image_size: tuple[int, int] = (64, 64),
    seed: int = 0,
) -> Path:
    """Write ``images`` JPEG photos of multi-label data into ``path/photos/`` and their labels
    file ``path/labels.csv`` (``path,labels``, labels joined by ``;``); returns the file.

    The photos cycle through the label sets ``cats`` (warm blobs), ``dogs`` (cool bars),
    ``cats;dogs`` (both shapes) and none (green triangles alone), on the noisy field of
    [`make_synthetic_dataset`][catdog.data.synthetic.make_synthetic_dataset]: learnable, and
    the same for a seed. ``image_size`` is ``(height, width)``, integers of at least 8.

    Examples:
        ```python
        labels = make_multilabel_dataset("/tmp/catdog-multilabel", images=40)
        splits = from_label_table(labels, image_size=(64, 64))
        ```
    """
    check_int("images", images)
    size = tuple(image_size)
    if len(size) != 2 or any(not isinstance(d, int) or d < 8 for d in size):
        raise InvalidArgumentError(f"image_size must be (height, width) >= 8, got {image_size!r}.")
    root = Path(path)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["path,labels"]
    for i in range(images):
        names, kinds = MULTILABEL_SETS[i % len(MULTILABEL_SETS)]
        _draw(rng, kinds, size).save(root / "photos" / f"photo.{i}.jpg", quality=90)
        lines.append(f"photos/photo.{i}.jpg,{LIST_SEPARATOR.join(names)}")
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return labels
