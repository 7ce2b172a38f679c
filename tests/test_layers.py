import keras
import numpy as np
import pytest

from catdog.models.layers import (
    InferenceMode,
    augmentation_layers,
    build_augmentation,
    mobilenet_v2_preprocessing,
)

from .helpers import random_images


def test_preprocessing_matches_keras_mobilenet_v2(rng):
    images = random_images(rng, 2, 32)
    ours = mobilenet_v2_preprocessing()(images)
    expected = keras.applications.mobilenet_v2.preprocess_input(images.copy())
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mobilenet_v2_preprocessing()(np.array([[0.0, 255.0]])), [[-1, 1]])


def test_default_augmentation_is_the_posts():
    flip, rotation = augmentation_layers()
    assert isinstance(flip, keras.layers.RandomFlip) and flip.mode == "horizontal_and_vertical"
    assert isinstance(rotation, keras.layers.RandomRotation) and rotation.factor == (-0.2, 0.2)


def test_augmentation_block_changes_training_images_only(rng):
    block = build_augmentation(zoom=0.1, contrast=0.2, seed=1)
    assert len(block.layers) == 4
    images = random_images(rng, 2, 32)
    np.testing.assert_array_equal(block(images, training=False), images)
    assert not np.allclose(block(images, training=True), images)


@pytest.mark.parametrize(
    "kwargs", [{"rotation": -0.1}, {"zoom": 1.5}, {"contrast": "a"}, {"flip": "both"}]
)
def test_bad_augmentation_arguments(kwargs):
    with pytest.raises(ValueError):
        augmentation_layers(**kwargs)


def test_inference_mode_round_trip(tmp_path, rng):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    model = keras.Sequential([keras.Input((4,)), InferenceMode(inner)])
    x = rng.normal(size=(8, 4)).astype("float32") * 5 + 3
    # inference mode: moving statistics (0, 1) are used even with training=True
    np.testing.assert_allclose(model(x, training=True), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    model.save(tmp_path / "w.keras")
    loaded = keras.saving.load_model(tmp_path / "w.keras")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
