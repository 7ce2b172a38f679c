"""The backbone zoo: every keras.applications backbone behind build_transfer_model."""

import json

import keras
import numpy as np
import pytest

from catdog import build_model, build_transfer_model
from catdog.errors import InvalidArgumentError
from catdog.models.backbones import BACKBONES, get_backbone
from catdog.models.classifier import get_base
from catdog.models.registry import list_models, model_spec
from catdog.training.feature_cache import split_transfer_model

from .helpers import random_images

ONE_PER_FAMILY = {}
for _spec in BACKBONES.values():
    ONE_PER_FAMILY.setdefault(_spec.family, _spec.name)  # the smallest of each family comes first


def smallest_side(name: str) -> int:
    return get_backbone(name).min_size


def features_through_model(model: keras.Model, images) -> np.ndarray:
    """The base's output inside ``model`` (its preprocessing, augmentation off, base)."""
    position = [layer.name for layer in model.layers].index("base")
    front = keras.Sequential([keras.Input(model.input_shape[1:]), *model.layers[: position + 1]])
    return keras.ops.convert_to_numpy(front(images, training=False))


def features_the_keras_way(model: keras.Model, family: str, images) -> np.ndarray:
    """``base(keras.applications.<family>.preprocess_input(x))``, the documented recipe."""
    preprocess = getattr(keras.applications, family).preprocess_input
    return keras.ops.convert_to_numpy(get_base(model)(preprocess(images.copy()), training=False))


def check_backbone(name: str, rng, tmp_path=None) -> None:
    """The issue's checks; the costly ones (another build, a saved file) with ``tmp_path``."""
    full = tmp_path is not None
    spec = get_backbone(name)
    side = smallest_side(name)
    model = build_transfer_model((side, side, 3), backbone=name, weights=None, name=name)
    images = random_images(rng, 2, side)
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.count_params() == spec.params == model_spec(name).params
    if full:
        own = getattr(keras.applications, spec.keras_class)(
            include_top=False, weights=None, input_shape=(side, side, 3)
        )
        assert get_base(model).count_params() == own.count_params()
    expected = features_the_keras_way(model, spec.family, images)
    scale = float(np.abs(expected).max()) or 1.0
    np.testing.assert_allclose(
        features_through_model(model, images), expected, rtol=1e-4, atol=1e-5 * scale
    )
    if not full:
        return
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)), probabilities, atol=1e-5
    )
    extractor, head = split_transfer_model(model)
    from_cache = head(extractor(images, training=False), training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(from_cache), probabilities, atol=1e-5)


# the heaviest families run with every backbone in the slow set
HEAVY = {"densenet121", "inception_resnet_v2", "inception_v3", "nasnet_mobile"}


@pytest.mark.parametrize("name", sorted(set(ONE_PER_FAMILY.values()) - HEAVY))
def test_one_backbone_per_family(name, rng, tmp_path):
    """Shape, softmax, parameters, preprocessing, safe-mode round trip, feature caching."""
    check_backbone(name, rng, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(BACKBONES) - set(ONE_PER_FAMILY.values()) | HEAVY))
def test_every_other_backbone(name, rng):
    """The backbones the default suite leaves out: each its own class, parameters and
    preprocessing (the default suite checks one of each family, in full)."""
    check_backbone(name, rng)


def test_the_zoo_is_every_keras_application():
    assert len(BACKBONES) == 40 and len(ONE_PER_FAMILY) == 15
    for spec in BACKBONES.values():
        assert hasattr(keras.applications, spec.keras_class), spec
        assert hasattr(getattr(keras.applications, spec.family), "preprocess_input"), spec
        entry = model_spec(spec.name)
        assert (entry.family, entry.input_size, entry.pretrained, entry.top1) == (
            spec.family, spec.input_size, True, spec.top1,
        )  # fmt: skip
    assert model_spec("transfer").params == 2_340_098
    assert list_models("efficientnet*", pretrained=True)[:2] == [
        "efficientnet_b0",
        "efficientnet_b1",
    ]


def test_builtin_rescaling_is_not_applied_twice(rng):
    """EfficientNet, EfficientNetV2, ConvNeXt and MobileNetV3 take raw pixels themselves."""
    for name in ("efficientnet_b0", "efficientnet_v2_b0", "convnext_tiny", "mobilenet_v3_small"):
        model = build_transfer_model((32, 32, 3), backbone=name, weights=None)
        assert not [layer.name for layer in model.layers if "preprocessing" in layer.name]
        assert model.get_layer("random_flip")  # augmentation sees 0..255 pixels
    resnet = build_transfer_model((32, 32, 3), backbone="resnet50", weights=None, contrast=0.2)
    assert resnet.layers[0].name == "resnet_preprocessing"
    low, high = resnet.get_layer("random_contrast").value_range
    assert low == pytest.approx(-123.68) and high == pytest.approx(255 - 103.939)


def test_input_size_rules_and_unknown_names():
    with pytest.raises(InvalidArgumentError, match="at least 75x75"):
        build_transfer_model((64, 64, 3), backbone="inception_v3", weights=None)
    with pytest.raises(InvalidArgumentError, match="at least 71x71"):
        build_transfer_model((64, 64, 3), backbone="xception", weights=None)
    with pytest.raises(ValueError, match="Did you mean 'efficientnet_v2_b0'"):
        build_transfer_model(backbone="efficientnetv2_b0", weights=None)
    with pytest.raises(ValueError, match="Did you mean 'convnext_tiny'"):
        build_model("convnext_tiyn")


def test_build_model_uses_the_spec_size_and_name():
    model = build_model("mobilenet_v3_small", weights=None, num_classes=5)
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 5)
    assert model.name == "mobilenet_v3_small"
    small = build_model("mobilenet_v3_small", input_shape=(48, 48, 3), weights=None)
    assert small.input_shape == (None, 48, 48, 3)


def test_fine_tuning_a_fraction_of_any_backbone():
    from catdog.models.transfer import check_unfreeze_from, unfreeze_base

    mobilenet = build_transfer_model((32, 32, 3), weights=None)
    assert check_unfreeze_from(mobilenet, 0.65) == 100  # the tutorial's layer 100
    model = build_transfer_model((32, 32, 3), backbone="efficientnet_b0", weights=None)
    base = get_base(model)
    trainable = unfreeze_base(model, 0.5)
    start = round(0.5 * len(base.layers))
    assert trainable == len(base.layers) - start
    assert not any(layer.trainable for layer in base.layers[:start])
    assert all(layer.trainable for layer in base.layers[start:])
    with pytest.raises(InvalidArgumentError, match=r"in \[0, 1\)"):
        check_unfreeze_from(model, 1.5)


def test_stand_in_weights_for_another_backbone(synthetic_splits, tmp_path):
    from catdog.models.weights import make_stand_in_weights

    images = np.concatenate([x.numpy() for x, _ in synthetic_splits.train.take(2)])
    path = make_stand_in_weights(tmp_path / "r.weights.h5", images, backbone="resnet50_v2")
    model = build_transfer_model((64, 64, 3), backbone="resnet50_v2", weights=path)
    features = keras.ops.convert_to_numpy(split_transfer_model(model)[0](images, training=False))
    assert float(features.std(axis=0).mean()) > 0.05  # informative features, not a dead base
    with pytest.raises(InvalidArgumentError, match="Could not load ResNet101V2 weights") as error:
        build_transfer_model((64, 64, 3), backbone="resnet101_v2", weights=path)
    assert len(str(error.value)) < 600  # Keras' message prints whole tensors; ours does not


@pytest.mark.slow
def test_cli_trains_a_backbone_with_cached_features_and_fine_tuning(
    synthetic_root, tmp_path, capsys
):
    from catdog.cli import main

    out = tmp_path / "run"
    status = main([
        "train", "--model", "mobilenet_v3_small", "--data", str(synthetic_root),
        "--weights", "none", "--image-size", "32", "--epochs", "2",
        "--fine-tune-epochs", "1", "--out", str(out),
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mobilenet_v3_small" and config["cache_features"] is True
    assert config["unfreeze_from"] == 0.65
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]["accuracy"]) == 3  # two cached-feature epochs, one fine-tuning
    assert history["fine_tune_start"] == 2
    loaded = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert get_base(loaded).name.startswith("MobileNetV3Small")
