"""Generated image datasets: the offline stand-in for cats_and_dogs_filtered."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catdog.errors import InvalidArgumentError

CLASS_NAMES = ("cats", "dogs")


def _draw(rng: np.random.Generator, label: int, size: tuple[int, int]):
    """One RGB image: warm round blobs for 'cats', cool bars for 'dogs', on a noisy field."""
    from PIL import Image, ImageDraw, ImageFilter

    height, width = size
    background = rng.integers(60, 190, size=3)
    noise = rng.normal(0, 25, size=(height // 8 + 1, width // 8 + 1, 3))
    field = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(field).resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        r = rng.uniform(0.08, 0.2) * min(height, width)
        if label == 0:  # warm ellipses
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

    ``path/train/{cats,dogs}/`` get ``images_per_class`` images each and
    ``path/validation/{cats,dogs}/`` get ``validation_per_class`` (default: half as many).
    "cats" show warm round blobs and "dogs" cool bars on a noisy background: a difference a
    small CNN learns in a few epochs, whatever the seed. ``mixed_sizes`` varies each image's
    size between 0.6x and 1.6x ``image_size``. Existing files of the same names are replaced.
    Returns ``Path(path)``.

    Examples:
        >>> root = make_synthetic_dataset("/tmp/catdog-demo", images_per_class=50)
        >>> sorted(p.name for p in (root / "train").iterdir())
        ['cats', 'dogs']
    """
    if (
        isinstance(images_per_class, bool)
        or not isinstance(images_per_class, int)
        or (images_per_class < 1)
    ):
        raise InvalidArgumentError(
            f"images_per_class must be a positive integer, got {images_per_class!r}."
        )
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


def make_stand_in_weights(path: str | os.PathLike, images, *, seed: int = 0) -> Path:
    """Write offline stand-in MobileNetV2 weights (no top) for ``build_transfer_model``.

    Random convolutions whose BatchNorm statistics are measured on ``images`` (an array or
    tensor of 0..255 pixels, ``(n, height, width, 3)``; a batch or two is enough). A randomly
    initialised MobileNetV2 in inference mode outputs near-zero features and the ImageNet
    weights need a download; these give frozen features that a head can learn from on
    generated data. For demos, tests and benchmarks: real photos need the ImageNet weights.
    ``path`` must end in ``.weights.h5``; the model's input size is the images' size.

    Examples:
        >>> images, _ = next(iter(splits.train))  # doctest: +SKIP
        >>> path = make_stand_in_weights("stand_in.weights.h5", images)  # doctest: +SKIP
        >>> model = build_transfer_model(input_shape=(64, 64, 3), weights=path)  # doctest: +SKIP
    """
    import keras

    from catdog.io import write_atomic

    if not str(path).endswith(".weights.h5"):
        raise InvalidArgumentError(f"path must end in '.weights.h5', got {str(path)!r}.")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 32:
        raise InvalidArgumentError(
            f"images must have shape (n, height, width, 3) with sides >= 32, got {images.shape}."
        )
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(
        input_shape=images.shape[1:], include_top=False, weights=None
    )
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the moving statistics become these images' statistics
    base(images / 127.5 - 1.0, training=True)  # the scaling of catdog's transfer model
    return write_atomic(path, base.save_weights)
