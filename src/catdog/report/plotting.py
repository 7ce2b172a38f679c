"""Figures of the tutorial, headless-safe: each function returns a matplotlib Figure and, given
``path``, saves it as PNG (atomically). matplotlib is imported only when a plot is made."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from catdog._rules import SPLIT_NAMES, check_int, history_dict
from catdog.data.images import load_images
from catdog.data.pipelines import Splits, label_counts, majority_baseline
from catdog.errors import InvalidArgumentError
from catdog.report._figures import (  # noqa: F401 (DPI: still importable from here)
    DPI,
    figure,
    finish,
    grid,
    plain,
    show,
)
from catdog.report.interpret import gradcam


def plot_samples(
    data,
    class_names: Sequence[str] | None = None,
    per_class: int = 3,
    *,
    split: str = "train",
    seed: int | None = 0,
    path: str | os.PathLike | None = None,
):
    """The tutorial's sample grid: one row per class, ``per_class`` images each, titled by class.

    Args:
        data (Splits | tf.data.Dataset): a [`catdog.Splits`][catdog.data.pipelines.Splits]
            (images are read from its file lists, a random choice per class) or a batched
            ``(images, labels)`` dataset of 0..255 pixels and class indices (its first
            ``per_class`` images of each class are shown).
        class_names: the class names in label order; needed with a dataset, ignored with
            ``Splits`` (which has its own).
        per_class: images per class, at least 1; a class with fewer images leaves cells blank.
        split: with ``Splits``, the split to show: ``"train"``, ``"validation"`` or ``"test"``.
        seed: with ``Splits``, the seed of the random choice of images; ``None`` chooses
            differently on every call.
        path: where to save the figure as PNG (written atomically); ``None`` saves nothing.

    Examples:
        ```python
        plot_samples(splits, path="samples.png")
        ```
    """
    check_int("per_class", per_class)
    rng = np.random.default_rng(seed)
    rows: list[list[np.ndarray]]
    if isinstance(data, Splits):
        class_names = data.class_names
        rows = []
        for label in range(len(class_names)):
            paths = [
                p for p, y in zip(data.files[split], data.labels[split], strict=True) if y == label
            ]
            chosen = rng.choice(len(paths), size=min(per_class, len(paths)), replace=False)
            rows.append(list(load_images([paths[i] for i in sorted(chosen)], data.image_size)))
    else:
        if not class_names:
            raise InvalidArgumentError("plot_samples needs class_names with a dataset.")
        rows = [[] for _ in class_names]
        for images, labels in data:
            for image, label in zip(np.asarray(images), np.asarray(labels), strict=True):
                if len(rows[int(label)]) < per_class:
                    rows[int(label)].append(image)
            if all(len(r) >= per_class for r in rows):
                break
    fig = figure(2.2 * per_class, 2.3 * len(class_names))
    axes = fig.subplots(len(class_names), per_class, squeeze=False)
    for row, name, images in zip(axes, class_names, rows, strict=True):
        for i, ax in enumerate(row):
            if i < len(images):
                show(ax, images[i], name)
            else:
                ax.axis("off")
    return finish(fig, path)


def plot_label_counts(data, *, path: str | os.PathLike | None = None):
    """Images per class in each split, as grouped bars, with the majority baseline in the title.

    ``data`` is a [`catdog.Splits`][catdog.data.pipelines.Splits] (counted from its file lists,
    nothing is
    decoded). The majority baseline is the accuracy of always guessing the most frequent training
    label.

    Examples:
        ```python
        plot_label_counts(splits, path="label_counts.png")
        ```
    """
    if not isinstance(data, Splits):
        raise InvalidArgumentError(
            f"plot_label_counts needs a catdog.Splits, got {type(data).__name__}; "
            "use catdog.data.pipelines.label_counts(dataset) for a plain dataset."
        )
    names = data.class_names
    fig = figure(max(5.0, 1.6 + 1.2 * len(names)), 3.6)
    ax = fig.subplots()
    width = 0.8 / len(SPLIT_NAMES)
    positions = np.arange(len(names))
    tallest = 1
    for i, split in enumerate(SPLIT_NAMES):
        counts = [label_counts(data, split)[n] for n in names]
        bars = ax.bar(positions + (i - 1) * width, counts, width, label=split)
        ax.bar_label(bars, fontsize=8)
        tallest = max(tallest, *counts)
    ax.set_xticks(positions, [plain(n) for n in names], rotation=45 if len(names) > 4 else 0)
    ax.set_ylim(0, tallest * 1.3)  # room for the legend above the bars
    baseline = majority_baseline(data) if data.labels["train"] else float("nan")
    ax.set(ylabel="images", title=f"label counts (majority baseline {baseline:.0%})")
    ax.legend(loc="upper center", ncols=len(SPLIT_NAMES))
    return finish(fig, path)


def plot_augmentation(
    image,
    augmentation=None,
    n: int = 8,
    *,
    seed: int | None = 0,
    path: str | os.PathLike | None = None,
):
    """One image and ``n`` augmented versions of it (default: the tutorial's flip + rotation).

    Args:
        image (np.ndarray): one image ``(h, w, 3)`` of 0..255 pixels.
        augmentation (keras.Layer | None): the augmentation layer(s) to apply; default: the
            tutorial's flip + rotation.
        n: how many augmented versions to draw.
        seed: seeds the default augmentation (``None``: a new draw each call).
        path: where to save the figure (PNG), or ``None`` to only return it.

    Examples:
        ```python
        plot_augmentation(images[0], path="augmentation.png")
        ```
    """
    import keras

    from catdog.models.layers import build_augmentation

    augmentation = augmentation or build_augmentation(seed=seed)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InvalidArgumentError(f"image must have shape (h, w, 3), got {image.shape}.")
    batch = np.repeat(image[None], n, axis=0)
    augmented = keras.ops.convert_to_numpy(augmentation(batch, training=True))
    cols = min(n + 1, 5)
    rows = -(-(n + 1) // cols)
    fig = figure(2.2 * cols, 2.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    show(axes[0], image, "original")
    for i in range(n):
        show(axes[i + 1], augmented[i], f"augmented {i + 1}")
    for ax in axes[n + 1 :]:
        ax.axis("off")
    return finish(fig, path)


def plot_history(
    history,
    *,
    fine_tune_start: int | None = None,
    baseline: float | None = None,
    fine_tune_label: str = "fine-tuning",
    path: str | os.PathLike | None = None,
):
    """Accuracy and loss curves, training vs validation, as in the tutorial.

    ``history`` is a Keras ``History`` or its ``.history`` dict; ``fine_tune_start`` (an
    epoch index) draws a line, labelled ``fine_tune_label``, where fine-tuning began;
    ``baseline`` a majority-baseline line.

    Args:
        history (keras.callbacks.History | dict): a Keras ``History`` or its ``.history`` dict.
        fine_tune_start: the epoch index where fine-tuning began (draws a line), or ``None``.
        baseline: the majority baseline's accuracy (draws a line), or ``None``.
        fine_tune_label: the label of the fine-tuning line.
        path: where to save the figure (PNG), or ``None`` to only return it.

    Examples:
        ```python
        plot_history(history, fine_tune_start=10, path="history.png")
        ```
    """
    data = history_dict(history)
    if "accuracy" not in data:
        raise InvalidArgumentError("history has no 'accuracy' values to plot.")
    fig = figure(10, 4)
    axes = fig.subplots(1, 2)
    epochs = np.arange(1, len(data["accuracy"]) + 1)
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        if metric in data:
            ax.plot(epochs, data[metric], marker="o", label="training")
        if f"val_{metric}" in data:
            ax.plot(epochs, data[f"val_{metric}"], marker="o", label="validation")
        if fine_tune_start is not None:
            ax.axvline(
                fine_tune_start + 0.5, color="gray", linestyle="--", label=plain(fine_tune_label)
            )
        if baseline is not None and metric == "accuracy":
            ax.axhline(baseline, color="red", linestyle=":", label="majority baseline")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} comparison")
        ax.legend()
    return finish(fig, path)


def plot_confusion_matrix(report, *, path: str | os.PathLike | None = None):
    """The confusion matrix of a [`Report`][catdog.report.evaluation.Report], with counts in cells.

    Examples:
        ```python
        plot_confusion_matrix(evaluate(model, splits), path="confusion.png")
        ```
    """
    matrix = np.asarray(report.confusion)
    names = report.class_names
    size = 1.2 + 0.9 * len(names)
    fig = figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(names)), [plain(n) for n in names], rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [plain(n) for n in names])
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {report.accuracy:.1%}")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    return finish(fig, path)


def plot_misclassified(
    report,
    n: int = 9,
    *,
    image_size: tuple[int, int] = (160, 160),
    model=None,
    path: str | os.PathLike | None = None,
):
    """A grid of the most confidently wrong images of a report (needs known file paths).

    Given the ``model``, each image shows its Grad-CAM heatmap for the wrongly predicted
    class: what the model took as evidence for it (models without a conv layer or pretrained
    base are drawn without).

    Args:
        report (Report): an evaluation [`Report`][catdog.report.evaluation.Report] with file paths.
        n: how many images to show at most.
        image_size: ``(height, width)`` the images are read at.
        model (keras.Model | None): the model that was evaluated, to draw Grad-CAM heatmaps;
            ``None`` for none.
        path: where to save the figure (PNG), or ``None`` to only return it.

    Examples:
        ```python
        plot_misclassified(report, path="misclassified.png")
        ```
    """
    wrong = [m for m in report.misclassified if m.path][:n]
    fig, axes = grid(len(wrong), 3)
    images = load_images([report.path_of(m) for m in wrong], image_size) if wrong else []
    heatmaps = [None] * len(wrong)
    if model is not None and wrong:
        try:
            heatmaps = gradcam(model, images)  # the predicted (wrong) class of each
        except InvalidArgumentError:  # a model of your own that Grad-CAM cannot explain
            heatmaps = [None] * len(wrong)
    for ax, m, image, heatmap in zip(axes, wrong, images, heatmaps, strict=False):
        show(ax, image, f"{m.true} -> {m.predicted} ({m.confidence:.2f})")
        if heatmap is not None:
            ax.imshow(heatmap, cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
    if not wrong:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    return finish(fig, path)


def plot_gradcam(
    images,
    heatmaps,
    titles: Sequence[str] | None = None,
    *,
    alpha: float = 0.45,
    path: str | os.PathLike | None = None,
):
    """Images with their Grad-CAM heatmaps laid over them (see ``catdog.report.interpret.gradcam``).

    Args:
        images (np.ndarray): images ``(n, h, w, 3)`` of 0..255 pixels.
        heatmaps (np.ndarray): their heatmaps ``(n, h, w)`` in 0..1, as ``gradcam`` returns them.
        titles: one title per image, or ``None``.
        alpha: the heatmaps' opacity, in 0..1.
        path: where to save the figure (PNG), or ``None`` to only return it.

    Examples:
        ```python
        from catdog.report.interpret import gradcam
        plot_gradcam(images, gradcam(model, images), path="gradcam.png")
        ```
    """
    images, heatmaps = np.asarray(images), np.asarray(heatmaps)
    if len(images) != len(heatmaps) or images.shape[1:3] != heatmaps.shape[1:3]:
        raise InvalidArgumentError(
            f"images {images.shape} and heatmaps {heatmaps.shape} must match in number and size."
        )
    fig, axes = grid(len(images), 4)
    for i, (ax, image, heatmap) in enumerate(zip(axes, images, heatmaps, strict=False)):
        show(ax, image, titles[i] if titles else None)
        ax.imshow(heatmap, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    return finish(fig, path)


def plot_lr_find(result, *, path: str | os.PathLike | None = None):
    """The learning-rate finder's loss against the learning rate, the suggestion marked.

    Examples:
        ```python
        plot_lr_find(lr_find(model, splits), path="lr_find.png")
        ```
    """
    fig = figure(6, 4)
    ax = fig.subplots()
    ax.plot(result.learning_rates, result.losses)
    ax.set_xscale("log")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="tab:red", linestyle="--")
        ax.set_title(f"suggested learning rate: {result.suggestion:.2g}")
    else:  # the note says why
        ax.set_title("no suggested learning rate (see the note)")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    return finish(fig, path)
