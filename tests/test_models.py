import os
import warnings

import keras
import numpy as np
import pytest

from catdog import (
    build_augmented_model,
    build_baseline_model,
    build_model,
    build_preprocessed_model,
    build_transfer_model,
    compile_model,
)
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import get_base

from .helpers import random_images

FACTORIES = {
    "baseline": build_baseline_model,
    "augmented": build_augmented_model,
    "preprocessed": build_preprocessed_model,
    "transfer": lambda **kw: build_transfer_model(weights=None, **kw),
}


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("num_classes,size", [(2, 160), (3, 160), (2, 96), (3, 96)])
def test_output_shape_and_softmax(name, num_classes, size, rng):
    model = FACTORIES[name](input_shape=(size, size, 3), num_classes=num_classes)
    out = model(random_images(rng, 4, size), training=False).numpy()
    assert out.shape == (4, num_classes)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", FACTORIES)
def test_inference_is_deterministic(name, rng):
    model = FACTORIES[name](input_shape=(64, 64, 3))
    images = random_images(rng, 3, 64)
    np.testing.assert_array_equal(model(images, training=False), model(images, training=False))
    np.testing.assert_allclose(
        model.predict(images, verbose=0), model(images, training=False), atol=1e-6
    )


def test_augmentation_and_dropout_are_active_in_training(rng):
    for model in (
        build_augmented_model(input_shape=(64, 64, 3), classifier_activation=None),
        build_baseline_model(input_shape=(64, 64, 3), classifier_activation=None),
    ):
        images = random_images(rng, 3, 64)
        assert not np.allclose(model(images, training=True), model(images, training=True))


def test_logits_head(rng):
    model = build_baseline_model(input_shape=(64, 64, 3), classifier_activation=None)
    out = model(random_images(rng, 5, 64)).numpy()
    assert not np.allclose(out.sum(axis=1), 1.0)
    compile_model(model)
    assert model.loss.get_config()["from_logits"] is True
    assert compile_model(build_baseline_model()).loss.get_config()["from_logits"] is False


# The post's models, parameter counts as its summaries print them (160x160x3).
POST_COUNTS = {
    "baseline": (2_962_594, 2_962_594),
    "augmented": (6_391_426, 6_391_426),
    "preprocessed": (2_962_594, 2_962_594),
    "transfer": (2_340_098, 82_114),
}
POST_LAYERS = {
    "baseline": [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Dropout",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ],
    "augmented": [
        "RandomFlip",
        "RandomRotation",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ],
    "preprocessed": [
        "Rescaling",
        "RandomFlip",
        "RandomRotation",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ],
    "transfer": [
        "Rescaling",
        "RandomFlip",
        "RandomRotation",
        "InferenceMode",
        "GlobalMaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
        "Dense",
    ],
}


@pytest.mark.parametrize("name", FACTORIES)
def test_default_architecture_matches_the_post(name):
    model = FACTORIES[name]()
    assert (model.count_params(), trainable_count(model)) == POST_COUNTS[name]
    assert [type(layer).__name__ for layer in model.layers] == POST_LAYERS[name]


def post_model_1() -> keras.Model:
    """The post's model 1 rebuilt in plain Keras (with its sigmoid head)."""
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((160, 160, 3)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Dropout(0.3),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(2, activation="sigmoid"),
        ]
    )


def test_baseline_equals_post_model_1_up_to_the_head(rng):
    ours, post = build_baseline_model(), post_model_1()
    assert [w.shape for w in ours.weights] == [w.shape for w in post.weights]
    ours.set_weights(post.get_weights())
    images = random_images(rng, 2, 160)
    hidden = images
    for layer in ours.layers[:-1]:
        hidden = layer(hidden, training=False)
    logits = hidden @ post.layers[-1].kernel + post.layers[-1].bias
    np.testing.assert_allclose(ours(images), keras.ops.softmax(logits), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", FACTORIES)
def test_save_load_round_trip_safe_mode(name, tmp_path, rng):
    model = FACTORIES[name](input_shape=(64, 64, 3), num_classes=3)
    images = random_images(rng, 4, 64)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6, atol=1e-7
    )
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers
    ]


def test_configurable_cnn():
    model = build_baseline_model(
        input_shape=(96, 96, 3),
        filters=(8, 16, 32),
        kernel_size=(5, 3, 3),
        pool_size=2,
        dense_units=10,
        dropout=0.0,
    )
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 32]
    assert [c.kernel_size for c in convs] == [(5, 5), (3, 3), (3, 3)]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert model.get_layer("dense").units == 10


def test_augmentation_settings_are_passed_through():
    model = build_augmented_model(flip="horizontal", rotation=0.1, zoom=0.2, contrast=None)
    names = [type(layer).__name__ for layer in model.layers[:3]]
    assert names == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert model.layers[0].mode == "horizontal"
    no_aug = build_augmented_model(flip=None, rotation=None)
    assert type(no_aug.layers[0]).__name__ == "Conv2D"


def test_transfer_options():
    model = build_transfer_model(
        input_shape=(96, 96, 3), weights=None, pooling="avg", base_trainable=True
    )
    assert isinstance(model.get_layer("global_pool"), keras.layers.GlobalAveragePooling2D)
    assert trainable_count(model) > 2_000_000
    assert get_base(model).trainable


def test_transfer_base_batchnorm_stays_frozen_when_unfrozen(rng):
    model = build_transfer_model(input_shape=(64, 64, 3), weights=None)
    base = get_base(model)
    base.trainable = True
    bn = next(layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    before_mean = bn.moving_mean.numpy().copy()
    before = [w.numpy().copy() for w in base.trainable_weights]
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)  # fast to start
    model.fit(random_images(rng, 8, 64), np.array([0, 1] * 4), epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before_mean)
    changed = [
        not np.allclose(a, w.numpy()) for a, w in zip(before, base.trainable_weights, strict=True)
    ]
    assert sum(changed) > len(changed) // 4, "the unfrozen base weights should train"


def test_transfer_local_weights_file(tmp_path, rng):
    source = build_transfer_model(input_shape=(96, 96, 3), weights=None)
    path = tmp_path / "mobilenet_v2_no_top.weights.h5"
    get_base(source).save_weights(path)
    model = build_transfer_model(input_shape=(96, 96, 3), weights=path)
    for a, b in zip(get_base(source).weights, get_base(model).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_stand_in_weights_give_features_a_head_learns_from(synthetic_splits, tmp_path):
    from catdog.models.weights import make_stand_in_weights

    images = np.concatenate([x.numpy() for x, _ in synthetic_splits.train.take(2)])
    path = make_stand_in_weights(tmp_path / "stand_in.weights.h5", images)
    random_base = build_transfer_model(input_shape=(64, 64, 3), weights=None)
    model = build_transfer_model(input_shape=(64, 64, 3), weights=path)
    for candidate, informative in ((random_base, False), (model, True)):
        features = get_base(candidate)(images / 127.5 - 1.0, training=False)
        spread = float(np.std(keras.ops.convert_to_numpy(features), axis=0).mean())
        assert (spread > 0.05) is informative, spread
    first_norm = get_base(model).get_layer("bn_Conv1")
    conv = get_base(model).get_layer("Conv1")(images / 127.5 - 1.0)
    np.testing.assert_allclose(  # the moving mean is the mean over these images
        first_norm.moving_mean.numpy(), np.mean(conv, axis=(0, 1, 2)), rtol=1e-3, atol=1e-4
    )
    with pytest.raises(InvalidArgumentError, match=".weights.h5"):
        make_stand_in_weights(tmp_path / "w.h5", images)
    with pytest.raises(InvalidArgumentError, match="at least 32x32"):
        make_stand_in_weights(tmp_path / "w.weights.h5", images[:, :16, :16])


def test_transfer_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing file"):
        build_transfer_model(weights=tmp_path / "nope.h5")


OFFLINE_IMAGENET = """
import socket
def refuse(*args, **kwargs):
    raise ConnectionRefusedError("no network in this test")
socket.socket.connect = refuse
from catdog import build_transfer_model
from catdog.errors import DownloadError
try:
    build_transfer_model(input_shape=(96, 96, 3))
except DownloadError as error:
    print("DownloadError", isinstance(error, ConnectionError), error)
"""


def test_imagenet_download_failure_says_what_to_do(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(  # an empty Keras cache: the weights must be downloaded, and can't
        [sys.executable, "-c", OFFLINE_IMAGENET],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert "DownloadError True" in done.stdout, done.stderr[-2000:]
    assert "weights=None" in done.stdout


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_shape": (160, 160, 1)}, "3 RGB channels"),
        ({"input_shape": (160, 160)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"dense_units": 0}, "dense_units"),
        ({"classifier_activation": "sigmoid"}, "softmax"),
        ({"filters": ()}, "filters"),
        ({"filters": (16, 0)}, "filters"),
        ({"kernel_size": (3,)}, "one per conv block"),
        ({"input_shape": (8, 8, 3), "filters": (16, 32, 64)}, "too small"),
    ],
)
def test_bad_cnn_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_baseline_model(**kwargs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"pooling": "sum"}, "pooling"),
        ({"input_shape": (16, 16, 3)}, "at least 32x32"),
        ({"rotation": 2.0}, "rotation"),
        ({"flip": "diagonal"}, "flip"),
    ],
)
def test_bad_transfer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_transfer_model(weights=None, **kwargs)


def test_bad_learning_rate():
    with pytest.raises(InvalidArgumentError, match="learning_rate"):
        compile_model(build_baseline_model(input_shape=(32, 32, 3)), learning_rate=0)


def test_contrast_works_in_the_preprocessed_value_range(rng):
    model = build_preprocessed_model(input_shape=(32, 32, 3), contrast=0.3, filters=(4,))
    assert tuple(model.get_layer("random_contrast").value_range) == (-1, 1)
    assert tuple(build_augmented_model(contrast=0.3).get_layer("random_contrast").value_range) == (
        0,
        255,
    )
    front = keras.Sequential(model.layers[:4])  # preprocessing and augmentation
    out = front(random_images(rng, 2, 32), training=True).numpy()
    assert out.min() < -0.5, "negative pixels must survive RandomContrast"


# ----------------------------------------------------------------------------- self-description
def test_classifier_config_describes_it_and_survives_saving(tmp_path, rng):
    from catdog.deploy.export import load_model

    model = build_transfer_model(
        (32, 32, 3), weights=None, class_names=["cat", "dog", "fox"], pooling="avg",
        dropout=0.1, classifier_activation=None,
    )  # fmt: skip
    config = model.get_config()
    described = {k: config[k] for k in ("class_names", "num_classes", "activation", "pooling")}
    assert described == {
        "class_names": ["cat", "dog", "fox"], "num_classes": 3, "activation": None,
        "pooling": "avg",
    }  # fmt: skip
    assert config["dropout"] == pytest.approx(0.1)
    compile_model(model, learning_rate=0.01)
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*compile\\(\\) was not called")
        loaded = load_model(tmp_path / "m.keras")
    assert loaded.compiled and loaded.loss.get_config()["from_logits"] is True
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    assert loaded.class_names == ["cat", "dog", "fox"]
    assert (loaded.num_classes, loaded.activation, loaded.pooling) == (3, None, "avg")
    assert loaded.dropout == pytest.approx(0.1)
    assert loaded.get_config()["augmentation"] == config["augmentation"]
    cnn = build_baseline_model(input_shape=(32, 32, 3))
    assert (cnn.num_classes, cnn.activation, cnn.pooling, cnn.dropout) == (2, "softmax", None, 0)


def test_configs_saved_before_the_description_still_load(rng):
    from catdog.models.classifier import ImageClassifier

    model = build_baseline_model(input_shape=(32, 32, 3), class_names=["a", "b"])
    config = model.get_config()
    for key in ("num_classes", "activation", "pooling", "dropout"):  # not in older files
        config.pop(key)
    restored = ImageClassifier.from_config(config)
    restored.set_weights(model.get_weights())
    images = random_images(rng, 2, 32)
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-6)
    assert restored.class_names == ["a", "b"] and restored.num_classes == 2
    config.pop("class_names"), config.pop("augmentation")  # the oldest files
    assert ImageClassifier.from_config(config).class_names is None


@pytest.mark.parametrize("activation,from_logits", [(None, True), ("softmax", False)])
def test_compile_loss_auto_follows_the_activation(activation, from_logits):
    model = build_baseline_model(input_shape=(32, 32, 3), classifier_activation=activation)
    assert model.activation == activation
    model.compile(optimizer="adam")  # loss="auto" is the default
    assert model.loss.get_config()["from_logits"] is from_logits
    model.compile(optimizer="adam", loss="auto", metrics=["accuracy"])
    assert model.loss.get_config()["from_logits"] is from_logits
    assert compile_model(model).loss.get_config()["from_logits"] is from_logits
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    assert model.loss.get_config()["from_logits"] is False  # an explicit loss is kept


def test_probabilities_softmax_logits_and_cast_to_float32(rng):
    from catdog.models.classifier import probabilities

    images = random_images(rng, 3, 32)
    logits_model = build_baseline_model(input_shape=(32, 32, 3), classifier_activation=None)
    logits = logits_model(images)
    probs = keras.ops.convert_to_numpy(probabilities(logits_model, logits))
    np.testing.assert_allclose(probs, keras.ops.softmax(logits), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    softmax_model = build_baseline_model(input_shape=(32, 32, 3))
    half = keras.ops.cast(softmax_model(images), "float16")
    out = probabilities(softmax_model, half)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(out, keras.ops.cast(half, "float32"))  # passed through


# ----------------------------------------------------------------------------- the model table


def test_transfer_preset_builds_the_tutorials_model_and_takes_overrides():
    built = build_model("transfer", weights=None)
    direct = build_transfer_model(weights=None)
    assert built.name == direct.name == "transfer"
    assert built.input_shape == direct.input_shape == (None, 160, 160, 3)
    assert [type(layer).__name__ for layer in built.layers] == [
        type(layer).__name__ for layer in direct.layers
    ]
    assert built.count_params() == direct.count_params() == 2_340_098
    other = build_model("transfer", weights=None, backbone="resnet50", input_shape=(64, 64, 3))
    assert other.layers[0].name == "resnet_preprocessing"


def test_models_command_shows_presets(capsys):
    from catdog import cli

    assert cli.main(["models", "transfer"]) == 0
    assert "(preset of mobilenet_v2) The tutorial's model 4" in capsys.readouterr().out
