import json

import numpy as np
import pytest
from PIL import Image

import catdog
import catdog.data.pipelines
import catdog.report.plotting
import catdog.runs.job
from catdog.data.synthetic import make_synthetic_dataset
from catdog.report.evaluation import evaluate
from catdog.runs.job import run_training

from .helpers import rename_class, small_config


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_sample_grid_from_splits_and_dataset(synthetic_splits, tmp_path):
    fig = catdog.report.plotting.plot_samples(
        synthetic_splits, per_class=3, path=tmp_path / "s.png"
    )
    assert _png_size(tmp_path / "s.png") == (660, 460)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cats"] * 3 + ["dogs"] * 3
    fig = catdog.report.plotting.plot_samples(synthetic_splits.train, ["cats", "dogs"], per_class=2)
    assert [ax.get_title() for ax in fig.axes] == ["cats", "cats", "dogs", "dogs"]


def test_label_counts_bars_per_split(synthetic_splits, tmp_path):
    fig = catdog.report.plotting.plot_label_counts(synthetic_splits, path=tmp_path / "counts.png")
    assert _png_size(tmp_path / "counts.png") == (500, 360)
    (ax,) = fig.axes
    heights = [[int(bar.get_height()) for bar in bars] for bars in ax.containers]
    expected = [
        [catdog.label_counts(synthetic_splits, split)[name] for name in ("cats", "dogs")]
        for split in ("train", "validation", "test")
    ]
    assert heights == expected and heights[0] == [40, 40]
    assert ax.get_title() == "label counts (majority baseline 50%)"
    with pytest.raises(ValueError, match="catdog.data.pipelines.label_counts"):
        catdog.report.plotting.plot_label_counts(synthetic_splits.train)


def test_augmentation_preview(tmp_path, rng):
    image = rng.uniform(0, 255, (40, 40, 3))
    fig = catdog.report.plotting.plot_augmentation(image, n=4, path=tmp_path / "a.png")
    assert _png_size(tmp_path / "a.png") == (1100, 230)  # 5 images in one row
    assert fig.axes[0].get_title() == "original" and len(fig.axes) == 5
    with pytest.raises(ValueError):
        catdog.report.plotting.plot_augmentation(np.zeros((4, 4)))


def test_history_with_fine_tune_mark(tmp_path):
    history = {
        "accuracy": [0.5, 0.7, 0.8, 0.9],
        "val_accuracy": [0.5, 0.6, 0.8, 0.85],
        "loss": [1, 0.8, 0.5, 0.3],
        "val_loss": [1, 0.9, 0.6, 0.4],
    }
    fig = catdog.report.plotting.plot_history(
        history, fine_tune_start=2, baseline=0.5, path=tmp_path / "h.png"
    )
    assert _png_size(tmp_path / "h.png") == (1000, 400)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["training", "validation", "fine-tuning", "majority baseline"]
    with pytest.raises(ValueError, match="accuracy"):
        catdog.report.plotting.plot_history({"loss": [1]})


def test_confusion_and_misclassified(synthetic_splits, tmp_path):
    model = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
    report = evaluate(model, synthetic_splits, split="validation")
    catdog.report.plotting.plot_confusion_matrix(report, path=tmp_path / "c.png")
    assert _png_size(tmp_path / "c.png") == (400, 300)
    fig = catdog.report.plotting.plot_misclassified(
        report, n=4, image_size=(64, 64), path=tmp_path / "m.png"
    )
    shown = min(4, len(report.misclassified))
    assert sum(1 for ax in fig.axes if ax.get_title()) == shown
    assert _png_size(tmp_path / "m.png")[0] > 0


def test_class_names_with_dollar_signs_are_drawn_as_text(tmp_path):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    rename_class(root, "cats", "notes_$5_$10")  # matplotlib would parse $5_$ as math
    rename_class(root, "dogs", "b")
    out = tmp_path / "run"
    run_training(small_config(root, out))
    for figure in ("samples.png", "history.png", "confusion_matrix.png", "misclassified.png"):
        assert (out / figure).stat().st_size > 0, figure
    assert json.loads((out / "class_names.json").read_text()) == ["b", "notes_$5_$10"]
    assert r"notes\_\$5\_\$10" in (out / "README.md").read_text()  # no math in Markdown
    assert not (out / ".resume").exists()
