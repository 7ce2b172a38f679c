"""Understanding and improving a model: Grad-CAM, test-time augmentation, the learning-rate
finder, class weights, tracking, and training on datasets of your own."""

import json
import shutil

import keras
import numpy as np
import pytest

from catdog import build_cnn_model, build_transfer_model
from catdog.deploy.predict import predict, predict_probabilities
from catdog.errors import InvalidArgumentError
from catdog.report.interpret import gradcam

from .helpers import random_images


def shape_images(rng, n: int, size: int = 32):
    """Noise images with one bright square (class 1) or a dark square (class 0) at a random
    place; returns (images, labels, masks of the square)."""
    images = rng.uniform(60, 120, (n, size, size, 3)).astype("float32")
    labels = rng.integers(0, 2, n)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        side = size // 4
        y, x = rng.integers(0, size - side, 2)
        images[i, y : y + side, x : x + side] = 250.0 if labels[i] else 0.0
        masks[i, y : y + side, x : x + side] = True
    return images, labels, masks


def test_gradcam_points_at_the_shape_that_decides_the_class(rng):
    keras.utils.set_random_seed(0)
    images, labels, masks = shape_images(rng, 400)
    model = build_cnn_model((32, 32, 3), filters=(16, 32), flip=None, rotation=None)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=8, batch_size=32, verbose=0)
    test, test_labels, test_masks = shape_images(np.random.default_rng(1), 40)
    assert model.evaluate(test, test_labels, verbose=0)[1] > 0.9  # it learned the shapes
    heatmaps = gradcam(model, test)
    assert heatmaps.shape == (40, 32, 32)
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    inside = np.array([h[m].mean() for h, m in zip(heatmaps, test_masks, strict=True)])
    outside = np.array([h[~m].mean() for h, m in zip(heatmaps, test_masks, strict=True)])
    assert inside.mean() > 3 * outside.mean(), (inside.mean(), outside.mean())
    assert np.mean(inside > outside) > 0.6  # image by image, too


def test_gradcam_explains_a_transfer_models_nested_base(rng):
    model = build_transfer_model((64, 64, 3), weights=None)
    heatmaps = gradcam(model, random_images(rng, 3, 64), class_index=1)
    assert heatmaps.shape == (3, 64, 64) and np.all((heatmaps >= 0) & (heatmaps <= 1))
    with pytest.raises(InvalidArgumentError, match="class_index"):
        gradcam(model, random_images(rng, 1, 64), class_index=2)
    with pytest.raises(InvalidArgumentError, match="shape"):
        gradcam(model, random_images(rng, 1, 32))
    softmax_layer = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
         keras.layers.Dense(2), keras.layers.Softmax()]
    )  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="ends in Softmax"):
        gradcam(softmax_layer, random_images(rng, 1, 32))


def test_flip_tta_is_the_mean_of_an_image_and_its_mirror_image(rng):
    keras.utils.set_random_seed(0)  # scaled inputs: probabilities away from 0 and 1
    model = build_cnn_model((32, 32, 3), filters=(4,), flip=None, rotation=None, scale_inputs=True)
    images = random_images(rng, 5, 32)
    plain = predict_probabilities(model, images)
    mirrored = predict_probabilities(model, images[:, :, ::-1, :])
    np.testing.assert_allclose(
        predict_probabilities(model, images, tta="flip"), (plain + mirrored) / 2, atol=1e-6
    )
    assert not np.allclose(plain, mirrored)  # the test means something
    best = [p.probabilities for p in predict(model, images, tta="flip")]
    np.testing.assert_allclose([list(b.values()) for b in best], (plain + mirrored) / 2)
    with pytest.raises(InvalidArgumentError, match="tta"):
        predict_probabilities(model, images, tta="rotate")


def test_lr_find_suggests_a_rate_and_leaves_the_model_untouched(synthetic_splits, tmp_path):
    from catdog.models.classifier import compile_model
    from catdog.training.lr_finder import lr_find

    keras.utils.set_random_seed(0)
    model = compile_model(build_cnn_model((64, 64, 3), filters=(8,), dense_units=8))
    model.fit(synthetic_splits.train.take(1), verbose=0)  # a used optimizer, with state
    weights = [w.numpy() for w in model.weights]
    state = [v.numpy() for v in model.optimizer.variables]
    result = lr_find(model, synthetic_splits, steps=20)
    assert 1e-7 <= result.suggestion <= 1.0
    assert len(result.learning_rates) == len(result.losses) >= 3
    assert np.all(np.diff(result.learning_rates) > 0)
    for before, after in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    for before, after in zip(state, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    result.plot(path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 1000
    with pytest.raises(InvalidArgumentError, match="start must be below end"):
        lr_find(model, synthetic_splits, start=1.0, end=0.1)


def test_balanced_class_weights_raise_the_minority_recall(synthetic_root, tmp_path):
    from catdog.data.pipelines import from_directory
    from catdog.report.evaluation import evaluate
    from catdog.training.fit import class_weights, train

    root = tmp_path / "imbalanced"
    shutil.copytree(synthetic_root, root)
    for split in ("train", "validation"):  # keep 1 dog in 10
        dogs = sorted((root / split / "dogs").iterdir())
        for path in dogs[len(dogs) // 9 :]:
            path.unlink()
    splits = from_directory(root, image_size=(64, 64), batch_size=16, seed=5)
    weights = class_weights(splits, "balanced", 2)
    cats, dogs = (splits.labels["train"].count(i) for i in (0, 1))
    assert weights[1] / weights[0] == pytest.approx(cats / dogs)
    recalls = {}
    for mode in (None, "balanced"):
        keras.utils.set_random_seed(0)
        model = build_cnn_model((64, 64, 3), filters=(8, 16), flip=None, rotation=None)
        train(model, splits, 4, class_weight=mode, learning_rate=3e-4, verbose=0)
        recalls[mode] = evaluate(model, splits, split="train").per_class["dogs"].recall
    assert recalls["balanced"] > recalls[None], recalls
    named = class_weights(splits, {"dogs": 3.0}, 2)
    assert named == {0: 1.0, 1: 3.0}
    with pytest.raises(InvalidArgumentError, match="class_weight"):
        class_weights(splits, {"wolves": 2.0}, 2)


def test_train_takes_datasets_of_your_own(synthetic_splits):
    from catdog.training.fit import train

    model = build_cnn_model((64, 64, 3), filters=(8,), dense_units=8, flip=None, rotation=None)
    pair = (synthetic_splits.train, synthetic_splits.validation)
    history = train(model, pair, 2, class_weight="balanced", verbose=0)
    assert len(history.history["val_accuracy"]) == 2
    with pytest.raises(InvalidArgumentError, match="pair"):
        train(model, [synthetic_splits.train], 1)


def test_cli_learning_rate_auto_class_weights_and_tensorboard(synthetic_root, tmp_path, capsys):
    from catdog.cli import main

    out, logs = tmp_path / "run", tmp_path / "logs"
    status = main([
        "train", "--model", "baseline", "--data", str(synthetic_root), "--image-size", "32",
        "--epochs", "1", "--learning-rate", "auto", "--class-weight", "balanced",
        "--tensorboard", str(logs), "--out", str(out),
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == "auto" and 0 < config["learning_rate_found"] < 1
    trained = keras.saving.load_model(out / "model.keras")  # it trained at the found rate
    assert float(trained.optimizer.learning_rate.numpy()) == pytest.approx(
        config["learning_rate_found"], rel=1e-5
    )
    assert (
        f"{config['learning_rate_found']:.2g} (learning-rate finder)"
        in (out / "README.md").read_text()
    )
    assert config["class_weight"] == "balanced"
    assert any(logs.rglob("events.out.tfevents.*"))


SWEEP = [1e-7 * 10 ** (7 * i / 99) for i in range(100)]  # lr_find's default sweep


def test_lr_suggestion_takes_a_noisy_small_loss_for_noise_not_divergence():
    from catdog.training.lr_finder import suggest_learning_rate

    rng = np.random.default_rng(0)
    losses = list(rng.uniform(0.005, 0.02, 100))  # a trained model: ~0.01 ...
    losses[1] = losses[20] = losses[50] = 0.05  # ... that wiggles to 0.05
    result = suggest_learning_rate(SWEEP, losses)
    assert len(result.losses) == 100, "judged diverged"
    assert result.suggestion is None and result.note.startswith("no clear descent")


@pytest.mark.parametrize("seed", range(5))
def test_lr_suggestion_of_a_flat_noisy_loss_is_none_saying_why(seed):
    from catdog.training.lr_finder import suggest_learning_rate

    losses = 0.69 * np.random.default_rng(seed).lognormal(0, 0.3, 100)  # chance, noisy
    result = suggest_learning_rate(SWEEP, losses)
    assert result.suggestion is None and result.note.startswith("no clear descent")


def test_lr_suggestion_of_a_u_shaped_loss_is_on_its_way_down():
    from catdog.training.lr_finder import suggest_learning_rate

    index = np.arange(100)  # falls from 0.7 to 0.2 around batch 50, explodes after 70
    losses = 0.2 + 0.5 / (1 + np.exp((index - 50) / 4)) + np.where(index > 70, index - 70, 0)
    result = suggest_learning_rate(SWEEP, losses)
    assert len(result.losses) < 100  # stopped where it diverged
    lowest = SWEEP[int(np.argmin(losses))]
    assert SWEEP[35] < result.suggestion < lowest, result
    assert result.note is None


def test_lr_suggestion_is_none_at_the_bottom_edge_or_after_nan():
    from catdog.training.lr_finder import suggest_learning_rate

    falling = 0.1 + np.exp(-np.arange(100) / 8)  # falling fastest from the first batch
    edge = suggest_learning_rate(SWEEP, falling)
    assert edge.suggestion is None and "lower the start" in edge.note, edge.note
    nan = suggest_learning_rate(SWEEP, [0.7, 0.7, float("nan")] + [0.7] * 97)
    assert nan.suggestion is None and len(nan.losses) == 2 and "diverged" in nan.note
    with pytest.raises(InvalidArgumentError, match="as long as"):
        suggest_learning_rate(SWEEP, [0.7])


def test_lr_find_on_a_trained_model_neither_raises_nor_suggests_the_bottom(synthetic_root):
    from catdog.data.pipelines import from_directory
    from catdog.models.classifier import compile_model
    from catdog.models.cnn import build_baseline_model
    from catdog.training.lr_finder import lr_find

    splits = from_directory(synthetic_root, image_size=(32, 32), batch_size=16, seed=5)
    keras.utils.set_random_seed(0)
    model = compile_model(build_baseline_model((32, 32, 3), 2), 1e-3)
    model.fit(splits.train, epochs=15, verbose=0)
    assert model.evaluate(splits.train, verbose=0)[0] < 0.05  # trained: fine-tuning's case
    weights = [w.numpy() for w in model.weights]
    result = lr_find(model, splits, steps=40)  # was 1e-7, or "The loss diverged within 1 ..."
    # a trained model's loss is already at its floor: no descent to suggest from
    assert result.suggestion is None, result
    assert result.note.startswith("no clear descent"), result.note
    for before, after in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_learning_rate_auto_without_a_descent_trains_at_the_default_rate(
    synthetic_root, tmp_path, monkeypatch, caplog
):
    import logging

    import catdog.training.lr_finder
    from catdog.cli import main

    def flat_sweep(model, splits):  # the finder's loss never falls
        return catdog.training.lr_finder.suggest_learning_rate(SWEEP, [0.69] * 100)

    monkeypatch.setattr(catdog.training.lr_finder, "lr_find", flat_sweep)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="catdog"):
        status = main([
            "train", "--model", "baseline", "--data", str(synthetic_root), "--image-size", "32",
            "--epochs", "1", "--learning-rate", "auto", "--out", str(out),
        ])  # fmt: skip
    assert status == 0
    assert "no clear descent" in caplog.text and "default rate 0.001" in caplog.text
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == "auto" and config["learning_rate_found"] is None
    assert config["learning_rate_note"].startswith("no clear descent")
    trained = keras.saving.load_model(out / "model.keras")
    assert float(trained.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert "learning-rate finder: no clear descent" in (out / "README.md").read_text()
