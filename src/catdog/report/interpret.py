"""Why a model decides as it does: Grad-CAM heatmaps for every catdog model.

Grad-CAM (Selvaraju et al., 2017) weighs the last convolutional feature map by the gradient
of a class score and keeps the positive part: where the evidence for that class lies. For a
transfer model the feature map is its pretrained base's output (the nested ``base`` model,
run in inference mode); for the CNNs, the last ``Conv2D``. The class score is the logit of
the class, before the softmax, so saturated probabilities still give gradients.
[`plot_gradcam`][catdog.report.plotting.plot_gradcam] overlays the heatmaps on the images;
[`plot_neighbours`][catdog.report.interpret.plot_neighbours] shows the training images most
like an image (see [`catdog.similar`][catdog.runs.embeddings.similar]).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog.data.images import load_images
from catdog.errors import InvalidArgumentError
from catdog.report._figures import figure, finish, show

logger = logging.getLogger("catdog")

if TYPE_CHECKING:
    import keras


def gradcam_layer(model: keras.Model) -> str:
    """The name of the layer whose output Grad-CAM explains: the base, else the last conv.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> gradcam_layer(build_baseline_model(input_shape=(32, 32, 3)))
        'conv_2'
    """
    import keras

    names = [layer.name for layer in model.layers]
    if "base" in names:
        return "base"
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise InvalidArgumentError(
            f"Model {model.name!r} has no convolutional layer or pretrained base to explain; "
            "Grad-CAM needs a Sequential catdog model (any of catdog.list_models())."
        )
    return convs[-1]


def gradcam(
    model: keras.Model,
    images_or_paths,
    class_index: int | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps ``(n, height, width)`` in 0..1, one per image, at the input's size.

    ``images_or_paths`` is an image array ``(n, h, w, 3)`` of 0..255 pixels (or one image) or
    a list of image files (read as ``predict`` reads them). Each heatmap explains the
    predicted class, or ``class_index`` for all images. Augmentation layers are left out, as
    at inference. An image without positive evidence gets an all-zero heatmap.

    Examples:
        ```python
        heatmaps = gradcam(model, ["cat.jpg"])
        heatmaps.shape
        # (1, 160, 160)
        ```
    """
    import keras
    import tensorflow as tf

    if not isinstance(model, keras.Sequential):
        raise InvalidArgumentError("gradcam needs a Sequential catdog model.")
    height, width = model.input_shape[1:3]
    images = _pixels(images_or_paths, height, width)
    classes = model.output_shape[-1]
    if class_index is not None and not (0 <= int(class_index) < classes):
        raise InvalidArgumentError(
            f"class_index must be in 0..{classes - 1} for this model, got {class_index!r}."
        )
    feature_map, gradients = _feature_map_and_gradients(model, images, class_index)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
    cam = tf.image.resize(cam[..., None], (height, width), method="bilinear")[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    return (cam / tf.where(peak > 0, peak, 1.0)).numpy()


def _pixels(images_or_paths, height: int, width: int) -> np.ndarray:
    """A float32 ``(n, height, width, 3)`` array of the images, or of the files read."""
    if not isinstance(images_or_paths, np.ndarray):
        return load_images([str(p) for p in images_or_paths], (height, width))
    images = images_or_paths.astype(np.float32)
    images = images[None] if images.ndim == 3 else images
    if images.shape[1:] != (height, width, 3):
        raise InvalidArgumentError(
            f"images must have shape (n, {height}, {width}, 3), got {images.shape}."
        )
    return images


def _feature_map_and_gradients(model: keras.Model, images: np.ndarray, class_index):
    """The explained layer's output and the gradient of the chosen class's logit along it."""
    import keras
    import tensorflow as tf

    from catdog.models.classifier import inference_model

    layers = inference_model(model).layers
    target = [layer.name for layer in layers].index(gradcam_layer(model))
    output = layers[-1]
    if not isinstance(output, keras.layers.Dense) or output.bias is None:
        raise InvalidArgumentError(
            f"Grad-CAM needs a model that ends in a Dense layer with a bias (catdog's head); "
            f"{model.name!r} ends in {type(output).__name__}."
        )
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        for layer in layers[: target + 1]:
            x = layer(x, training=False)
        feature_map = tf.cast(x, tf.float32)  # float32 gradients under mixed precision too
        tape.watch(feature_map)
        x = feature_map
        for layer in layers[target + 1 : -1]:
            x = layer(x, training=False)
        x = tf.cast(x, tf.float32)  # mixed precision: the output layer is float32
        logits = tf.matmul(x, tf.cast(output.kernel, tf.float32)) + output.bias
        chosen = (
            tf.fill([tf.shape(logits)[0]], int(class_index))
            if class_index is not None
            else tf.argmax(logits, axis=1, output_type=tf.int32)
        )
        score = tf.gather(logits, chosen, axis=1, batch_dims=1)
    return feature_map, tf.cast(tape.gradient(score, feature_map), tf.float32)


MAX_QUERY_ROWS = 50
"""The most query images (rows) one figure of similar images draws."""


def plot_neighbours(
    queries: Sequence[str],
    neighbours: Sequence[Sequence],
    *,
    image_size: tuple[int, int] = (96, 96),
    path: str | os.PathLike | None = None,
):
    """A thumbnail grid of similar images: one row per query image, the query first, then its
    neighbours, each titled with its similarity, split and class; saved as PNG (atomically)
    when ``path`` is given.

    Args:
        queries: the query image files.
        neighbours: for each query, its neighbours, most similar first: objects with a
            ``path``, ``similarity``, ``split`` and ``label``, such as
            [`catdog.similar`][catdog.runs.embeddings.similar]'s.
        image_size: the size of the thumbnails.
        path: where to save the figure; ``None`` saves nothing.

    Examples:
        ```python
        plot_neighbours(["photo.jpg"], catdog.similar(["photo.jpg"], "runs/demo"), path="s.png")
        ```
    """
    if len(queries) > MAX_QUERY_ROWS:  # a figure has a largest size: draw the first ones
        logger.warning("Drawing the first %d of %d query images.", MAX_QUERY_ROWS, len(queries))
        queries, neighbours = queries[:MAX_QUERY_ROWS], neighbours[:MAX_QUERY_ROWS]
    cols = 1 + max((len(found) for found in neighbours), default=0)
    fig = figure(2.2 * cols, 2.4 * max(1, len(queries)))
    axes = fig.subplots(max(1, len(queries)), cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, query, found in zip(axes, queries, neighbours, strict=False):
        pixels = load_images([query, *(n.path for n in found)], image_size)
        show(row[0], pixels[0], f"query\n{Path(query).name}")
        for ax, image, near in zip(row[1:], pixels[1:], found, strict=False):
            show(ax, image, f"{near.similarity:.3f} {near.split or ''}\n{near.label or ''}")
    return finish(fig, path)
