"""Feature caching, mixed precision and the fast predict path (behaviour, not timings)."""

import keras
import numpy as np
import pytest

import catdog
from catdog.deploy.predict import Predictor, as_predictor
from catdog.errors import InvalidArgumentError
from catdog.models.registry import precision_scope
from catdog.training.feature_cache import extract_features, split_transfer_model
from catdog.training.fit import train

from .helpers import random_images


@pytest.fixture(scope="module")
def splits96(synthetic_root):
    return catdog.from_directory(synthetic_root, image_size=(48, 48), batch_size=16, seed=4)


def test_cached_training_gives_the_same_end_to_end_model(splits96, tmp_path):
    model = catdog.build_transfer_model(input_shape=(48, 48, 3), weights=None)
    base_before = [w.numpy().copy() for w in catdog.get_base(model).weights]
    head_before = model.get_layer("predictions").kernel.numpy().copy()
    best = tmp_path / "best.keras"
    history = train(
        model, splits96, epochs=2, cache_features=True, augment_copies=1, checkpoint=best, verbose=0
    )
    assert len(history.history["val_accuracy"]) == 2
    assert not np.allclose(model.get_layer("predictions").kernel.numpy(), head_before)
    for before, after in zip(base_before, catdog.get_base(model).weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    images = next(iter(splits96.test))[0].numpy()
    extractor, head = split_transfer_model(model)
    end_to_end = model.predict(images, verbose=0)
    np.testing.assert_allclose(
        head.predict(extractor.predict(images, verbose=0), verbose=0),
        end_to_end,
        rtol=1e-5,
        atol=1e-6,
    )
    # the checkpoint is the whole model, not the head alone
    loaded = catdog.load_model(best)
    assert loaded.input_shape == (None, 48, 48, 3) and loaded.output_shape == (None, 2)


def test_features_stay_aligned_with_labels_of_a_reshuffled_dataset(splits96):
    model = catdog.build_transfer_model(
        input_shape=(48, 48, 3), weights=None, rotation=None, flip=None
    )
    extractor, _ = split_transfer_model(model)
    shuffled_x, shuffled_y = extract_features(extractor, splits96.train)
    reference_x, reference_y = [], []
    for images, labels in splits96.train:  # another order: pair features with labels directly
        reference_x.append(extractor.predict(images, verbose=0))
        reference_y.append(labels.numpy())
    reference_x, reference_y = np.concatenate(reference_x), np.concatenate(reference_y)
    scale = np.abs(reference_x).max()
    for row, label in zip(shuffled_x, shuffled_y, strict=True):
        distances = np.abs(reference_x - row).max(axis=1) / scale
        match = int(distances.argmin())
        assert distances[match] < 1e-4 and reference_y[match] == label


def test_augmented_copies_multiply_the_training_features(splits96):
    model = catdog.build_transfer_model(input_shape=(48, 48, 3), weights=None)
    extractor, _ = split_transfer_model(model)
    x, y = extract_features(extractor, splits96.train, copies=2)
    n = len(splits96.files["train"])
    assert x.shape == (3 * n, 1280) and y.shape == (3 * n,)
    assert sorted(y[:n].tolist()) == sorted(y[n : 2 * n].tolist())


def test_feature_caching_needs_a_frozen_transfer_base(splits96):
    model = catdog.build_transfer_model(input_shape=(48, 48, 3), weights=None, base_trainable=True)
    with pytest.raises(InvalidArgumentError, match="frozen base"):
        train(model, splits96, epochs=1, cache_features=True, verbose=0)
    cnn = catdog.build_baseline_model(input_shape=(48, 48, 3))
    with pytest.raises(InvalidArgumentError, match="no pretrained base"):
        train(cnn, splits96, epochs=1, cache_features=True, verbose=0)
    frozen = catdog.build_transfer_model(input_shape=(48, 48, 3), weights=None)
    with pytest.raises(InvalidArgumentError, match="augment_copies"):
        train(frozen, splits96, epochs=1, cache_features=True, augment_copies=-1, verbose=0)


@pytest.mark.parametrize(
    "precision", ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)]
)
def test_mixed_precision_keeps_float32_outputs_and_learns(precision, synthetic_splits):
    before = keras.config.dtype_policy().name
    model = catdog.build_model(
        "preprocessed", input_shape=(64, 64, 3), rotation=None, precision=precision
    )
    assert keras.config.dtype_policy().name == before  # the policy is restored
    assert model.get_layer("conv_1").compute_dtype == precision.split("_")[1]
    assert model.get_layer("conv_1").variable_dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    train(model, synthetic_splits, epochs=6, verbose=0)
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    out = model.predict(next(iter(synthetic_splits.test))[0], verbose=0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    report = catdog.evaluate(model, synthetic_splits, split="validation")
    assert report.accuracy >= report.baseline + 0.25  # the float32 model's band (test_training)


def test_bad_precision():
    with pytest.raises(InvalidArgumentError, match="precision"), precision_scope("float8"):
        pass


@pytest.mark.parametrize("name", ["preprocessed", "transfer"])
def test_fast_predict_agrees_with_model_predict(name, rng):
    kwargs = {"weights": None} if name == "transfer" else {}
    model = catdog.build_model(name, input_shape=(64, 64, 3), **kwargs)
    predictor = Predictor(model)
    for n in (1, 5):
        images = random_images(rng, n, 64)
        np.testing.assert_allclose(
            predictor(images), model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
        )
    assert predictor(random_images(rng, 1, 64)[0]).shape == (1, 2)  # a single image
    assert as_predictor(predictor) is predictor  # the caller's, not made again
    images = random_images(rng, 3, 64)
    by_predict = [list(p.probabilities.values()) for p in catdog.predict(predictor, images)]
    np.testing.assert_allclose(by_predict, predictor(images), rtol=1e-6)  # predict runs it
    with pytest.raises(InvalidArgumentError, match="shape"):
        predictor(np.zeros((1, 32, 32, 3)))


def test_fast_predict_of_a_logit_model_gives_probabilities(rng):
    model = catdog.build_baseline_model(
        input_shape=(32, 32, 3), classifier_activation=None, filters=(4,)
    )
    images = random_images(rng, 3, 32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(images, verbose=0)))
    np.testing.assert_allclose(Predictor(model)(images), expected, rtol=1e-5, atol=1e-6)
