"""The model registry (``catdog.models.registry``): names, specs, presets and plugins."""

import pytest

import catdog
from catdog import build_baseline_model, build_model, list_models
from catdog.errors import InvalidArgumentError


def test_registry():
    from catdog.models.backbones import BACKBONES

    assert list_models(pretrained=False) == ["augmented", "baseline", "preprocessed"]
    assert list_models() == sorted(
        ["augmented", "baseline", "preprocessed", "prototypes", "transfer", *BACKBONES]
    )
    assert len(BACKBONES) == 40
    assert list_models("*ed") == ["augmented", "preprocessed"]
    assert list_models("nothing*") == []
    model = build_model("baseline", input_shape=(96, 96, 3), num_classes=3)
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="Did you mean 'resnet50', 'resnet152' or 'resnet101'"):
        build_model("resnet")
    with pytest.raises(ValueError, match="Unknown model 'zzz'. catdog.list_models"):
        build_model("zzz")


def test_register_model_decorator():
    from catdog.models.registry import _REGISTRY, register_model

    @register_model("tiny_test")
    def build_tiny(input_shape=(32, 32, 3), num_classes=2):
        return build_baseline_model(input_shape, num_classes, filters=(4,), dense_units=4)

    try:
        assert "tiny_test" in list_models("tiny*")
        assert build_model("tiny_test", num_classes=4).output_shape == (None, 4)
        spec = catdog.models.registry.model_spec("tiny_test")  # metadata from the defaults
        assert (spec.family, spec.input_size, spec.pretrained, spec.params) == (
            "custom", None, False, None,
        )  # fmt: skip
        assert build_model("tiny_test").input_shape == (None, 32, 32, 3)  # the factory's size
    finally:
        _REGISTRY.pop("tiny_test")


def test_spec_says_what_the_factory_takes_and_what_it_is_a_preset_of():
    from catdog.models.registry import factory_parameters, model_spec

    transfer, mobilenet = model_spec("transfer"), model_spec("mobilenet_v2")
    assert (transfer.preset_of, mobilenet.preset_of, model_spec("baseline").preset_of) == (
        "mobilenet_v2", None, None,
    )  # fmt: skip
    assert (transfer.input_size, mobilenet.input_size) == (160, 224)
    assert (transfer.family, transfer.pretrained, transfer.params, transfer.top1) == (
        mobilenet.family, True, mobilenet.params, mobilenet.top1,
    )  # fmt: skip
    assert transfer.description.startswith("The tutorial's model 4")
    for name in ("transfer", "mobilenet_v2", "baseline", "augmented", "preprocessed"):
        assert model_spec(name).takes_class_names, name
        assert factory_parameters(name) == set(model_spec(name).arguments)
    assert {"backbone", "pooling", "dropout"} <= set(transfer.arguments)
    assert {"filters", "dense_units"} <= set(model_spec("baseline").arguments)


def test_register_preset_and_plugin_arguments():
    from catdog.models.registry import _REGISTRY, model_spec, register_model, register_preset

    @register_model("tiny_spec")
    def build_tiny(input_shape=(32, 32, 3), num_classes=2, dense_units=4):
        return build_baseline_model(input_shape, num_classes, filters=(4,), dense_units=dense_units)

    try:
        assert model_spec("tiny_spec").arguments == ("input_shape", "num_classes", "dense_units")
        assert not model_spec("tiny_spec").takes_class_names
        register_preset("tiny_wide", "tiny_spec", {"dense_units": 8}, description="Wider.")
        spec = model_spec("tiny_wide")
        assert (spec.preset_of, spec.description, spec.arguments) == (
            "tiny_spec", "Wider.", model_spec("tiny_spec").arguments,
        )  # fmt: skip
        assert build_model("tiny_wide").get_layer("dense").units == 8
        assert build_model("tiny_wide", dense_units=2).get_layer("dense").units == 2
        with pytest.raises(InvalidArgumentError, match="does not take"):
            register_preset("tiny_bad", "tiny_spec", {"pooling": "max"})
        with pytest.raises(InvalidArgumentError, match="before its preset"):
            register_preset("tiny_bad", "no_such_model", {})
    finally:
        for name in ("tiny_spec", "tiny_wide"):
            _REGISTRY.pop(name, None)
