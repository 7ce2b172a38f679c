import json
import re
import subprocess
import sys
import textwrap

import keras
import keras_tuner as kt
import pytest

from catdog.deploy.export import load_model
from catdog.errors import InvalidArgumentError
from catdog.models.registry import build_model
from catdog.training.tuning import CatDogHyperModel, tune, validate_hyperparameters

CNNS = ["baseline", "augmented", "preprocessed"]


@pytest.fixture(scope="module")
def tiny_splits(synthetic_root):
    from catdog.data.pipelines import from_directory

    return from_directory(synthetic_root, image_size=(32, 32), batch_size=16, seed=2)


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
def test_random_search_reports_a_best_model(tiny_splits, tmp_path):
    search = tune(
        tiny_splits,
        "random",
        max_trials=3,
        epochs=1,
        directory=tmp_path,
        project_name="rs",
        families=CNNS,
        verbose=0,
    )
    summary = _summary(tmp_path / "rs")
    assert [t["status"] for t in summary["trials"]] == ["COMPLETED"] * 3
    scores = [t["score"] for t in summary["trials"]]
    assert summary["best_score"] == max(scores)
    assert summary["best_hyperparameters"]["family"] in CNNS
    best = load_model(tmp_path / "rs" / "best_model.keras")
    assert best.output_shape == (None, 2)
    assert search.get_best_hyperparameters()[0].values == summary["best_hyperparameters"]


@pytest.mark.slow
def test_hyperband_with_a_tiny_budget(tiny_splits, tmp_path):
    tune(
        tiny_splits,
        "hyperband",
        epochs=2,
        directory=tmp_path,
        project_name="hb",
        families=["baseline"],
        verbose=0,
    )
    summary = _summary(tmp_path / "hb")
    assert summary["tuner"] == "Hyperband" and summary["best_score"] is not None
    assert (tmp_path / "hb" / "best_model.keras").exists()


def test_build_from_given_values_has_exactly_those_layers():
    hp = kt.HyperParameters()
    for name, value in [
        ("family", "augmented"),
        ("conv_blocks", 3),
        ("filters_0", 8),
        ("filters_1", 16),
        ("filters_2", 24),
        ("kernel_size", 5),
        ("pool_size", 2),
        ("dense_units", 32),
        ("dropout", 0.2),
        ("augment", True),
        ("flip", "vertical"),
        ("rotation", 0.1),
        ("zoom", 0.1),
        ("contrast", 0.0),
        ("learning_rate", 3e-4),
    ]:
        hp.Fixed(name, value)
    model = CatDogHyperModel(input_shape=(96, 96, 3), num_classes=3).build(hp)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 24]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert model.get_layer("dense").units == 32
    assert model.get_layer("conv_dropout").rate == pytest.approx(0.2)
    assert model.get_layer("random_flip").mode == "vertical"
    assert "random_zoom" in [layer.name for layer in model.layers]
    assert "random_contrast" not in [layer.name for layer in model.layers]
    assert model.output_shape == (None, 3)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(3e-4)


def _architecture(model: keras.Model) -> list:
    """Each layer's kind and the settings the search space sets (filters, rates, units)."""
    keys = ("filters", "kernel_size", "pool_size", "rate", "units", "mode", "factor")
    return [
        (type(layer).__name__, {k: v for k, v in layer.get_config().items() if k in keys})
        for layer in model.layers
    ]


@pytest.mark.parametrize("family", ["baseline", "augmented", "preprocessed", "transfer"])
def test_unsearched_hyperparameters_build_the_tutorials_model(family):
    hp = kt.HyperParameters()
    hp.Fixed("family", family)
    space = CatDogHyperModel(input_shape=(48, 48, 3), weights=None, backbones=["mobilenet_v2"])
    tuned = space.build(hp)
    weights = {"weights": None} if family == "transfer" else {}
    plain = build_model(family, input_shape=(48, 48, 3), num_classes=2, **weights)
    assert _architecture(tuned) == _architecture(plain)


def test_transfer_branch_with_fine_tuning():
    hp = kt.HyperParameters()
    hp.Fixed("family", "transfer")
    hp.Fixed("fine_tune_base", True)
    hp.Fixed("unfreeze_from", 0.8)
    hp.Fixed("pooling", "avg")
    model = CatDogHyperModel(input_shape=(64, 64, 3), weights=None).build(hp)
    assert model.get_layer("base").layer.name.startswith("mobilenetv2")  # the default choice
    base = model.get_layer("base").layer
    start = round(0.8 * len(base.layers))  # a fraction of the base's depth: layer 123 of 154
    assert start == 123
    assert not any(layer.trainable for layer in base.layers[:start])
    assert all(layer.trainable for layer in base.layers[start:])
    assert isinstance(model.get_layer("global_pool"), keras.layers.GlobalAveragePooling2D)


@pytest.mark.slow
def test_fixed_values_are_honoured(tiny_splits, tmp_path):
    hp = kt.HyperParameters()
    hp.Fixed("family", "preprocessed")
    hp.Choice("kernel_size", [3, 5])
    tune(
        tiny_splits,
        "random",
        max_trials=2,
        epochs=1,
        directory=tmp_path,
        project_name="fx",
        hyperparameters=hp,
        verbose=0,
    )
    trials = _summary(tmp_path / "fx")["trials"]
    assert len(trials) == 2
    assert all(t["hyperparameters"]["family"] == "preprocessed" for t in trials)
    assert all(t["hyperparameters"]["kernel_size"] in (3, 5) for t in trials)


@pytest.mark.slow
def test_tune_new_entries_false_keeps_defaults(tiny_splits, tmp_path):
    hp = kt.HyperParameters()
    hp.Fixed("family", "baseline")
    hp.Choice("dense_units", [8, 16])
    tune(
        tiny_splits,
        "random",
        max_trials=3,
        epochs=1,
        directory=tmp_path,
        project_name="nt",
        hyperparameters=hp,
        tune_new_entries=False,
        verbose=0,
    )
    for trial in _summary(tmp_path / "nt")["trials"]:
        values = trial["hyperparameters"]
        assert values["dense_units"] in (8, 16)
        assert values["conv_blocks"] == 2 and values["kernel_size"] == 3  # defaults
        assert values["learning_rate"] == pytest.approx(1e-3)


@pytest.mark.slow
def test_resumed_search_does_not_repeat_trials(tiny_splits, tmp_path):
    kwargs = dict(
        directory=tmp_path, project_name="resume", families=["baseline"], epochs=1, verbose=0
    )
    tune(tiny_splits, "random", max_trials=2, **kwargs)
    first = {t["trial_id"]: t for t in _summary(tmp_path / "resume")["trials"]}
    tune(tiny_splits, "random", max_trials=3, **kwargs)
    second = {t["trial_id"]: t for t in _summary(tmp_path / "resume")["trials"]}
    assert len(first) == 2 and len(second) == 3
    for trial_id, trial in first.items():
        assert second[trial_id] == trial  # finished trials kept, not rerun


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("filters_0", 0, "positive integer"),
        ("rotation", 1.5, "rotation must be a number in [0, 1]"),
        ("family", "resnet", "Unknown model 'resnet'. Did you mean 'resnet50'"),
        ("pooling", "mean", "pooling must be one of 'max' or 'avg', got 'mean'."),
        ("flip", "diagonal", "flip must be one of 'horizontal', 'vertical' or"),
        ("conv_blocks", 5, "conv_blocks must be at most 4"),
        ("unfreeze_from", 1.0, "fraction of the base's depth must be in [0, 1)"),
        ("learning_rate", -1.0, "positive"),
        ("dropout", 1.0, "[0, 1)"),
    ],
)
def test_bad_values_fail_before_any_trial(tiny_splits, tmp_path, name, value, message):
    hp = kt.HyperParameters()
    hp.Fixed(name, value)
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        tune(
            tiny_splits,
            "random",
            max_trials=1,
            epochs=1,
            directory=tmp_path,
            project_name="bad",
            hyperparameters=hp,
            verbose=0,
        )
    assert not (tmp_path / "bad").exists()


def test_bad_ranges_and_families():
    hp = kt.HyperParameters()
    hp.Int("filters_1", 0, 64)
    with pytest.raises(InvalidArgumentError, match="filters_1"):
        validate_hyperparameters(hp)
    with pytest.raises(InvalidArgumentError, match="families: Unknown model 'resnet'"):
        CatDogHyperModel(families=["baseline", "resnet"])
    with pytest.raises(InvalidArgumentError, match="families must name at least one"):
        CatDogHyperModel(families=[])
    with pytest.raises(InvalidArgumentError, match="tuner must be one of 'random'"):
        tune(None, "grid")
    with pytest.raises(InvalidArgumentError, match="Did you mean 'bayesian'"):
        tune(None, "baysian")


@pytest.fixture
def registry(monkeypatch):
    """The model registry, restored after the test."""
    from catdog.models import registry

    registry.list_models()  # load catdog's own models first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def test_the_space_asks_the_model_spec_not_the_name(registry):
    from catdog.models.cnn import build_cnn_model
    from catdog.training.search_space import tuning_kind

    @registry.register_model("my_cnn", family="cnn")
    def build_my_cnn_model(input_shape=(32, 32, 3), num_classes=None, **kwargs):
        return build_cnn_model(input_shape, num_classes, **{"name": "my_cnn", **kwargs})

    @registry.register_model("my_custom")
    def build_my_custom_model(**kwargs):  # pragma: no cover - never built
        raise AssertionError

    assert tuning_kind("my_cnn") == "cnn" and tuning_kind("efficientnet_b0") == "pretrained"
    with pytest.raises(InvalidArgumentError, match="'my_custom' \\(family 'custom'\\) cannot be"):
        CatDogHyperModel(families=["my_cnn", "my_custom"])
    hypermodel = CatDogHyperModel(input_shape=(32, 32, 3), families=["my_cnn"])
    assert hypermodel.conditions("kernel_size") == [("family", ["my_cnn"])]
    assert hypermodel.conditions("flip") == [("family", ["my_cnn"]), ("augment", [True])]
    hp = kt.HyperParameters()
    hp.Fixed("kernel_size", 5)
    model = hypermodel.build(hypermodel.condition(hp))
    assert model.name == "my_cnn" and model.get_layer("conv_1").kernel_size == (5, 5)


def test_a_backbone_model_is_tuned_without_a_backbone_choice():
    hypermodel = CatDogHyperModel(
        input_shape=(32, 32, 3), families=["transfer", "mobilenet_v3_small"], weights=None
    )
    assert hypermodel.conditions("backbone") == [("family", ["transfer"])]
    assert hypermodel.conditions("pooling") == [("family", ["transfer", "mobilenet_v3_small"])]
    hp = kt.HyperParameters()
    hp.Fixed("family", "mobilenet_v3_small")
    model = hypermodel.build(hypermodel.condition(hp))
    assert "backbone" not in hp and model.get_layer("base").layer.name.startswith("MobileNetV3")


MISSING_EXTRA = textwrap.dedent(
    """
    import sys
    sys.modules["keras_tuner"] = None  # as if keras-tuner were not installed
    import catdog
    assert "build_transfer_model" in dir(catdog)
    try:
        import catdog.training.tuning
    except ImportError as error:
        print("import:", error)
    from catdog.cli import main
    sys.exit(main(["tune", "--demo"]))
    """
)


def test_missing_extra_says_how_to_install(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", MISSING_EXTRA],
        capture_output=True,
        text=True,
        timeout=300,
        env={"KERAS_HOME": str(tmp_path), "PATH": "/usr/bin"},
    )
    assert "import: catdog.training.tuning needs KerasTuner" in done.stdout
    assert "pip install keras-tuner tensorboard" in done.stdout
    assert done.returncode == 2
    assert "catdog: error: catdog.training.tuning needs KerasTuner" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_tune(tmp_path, capsys, monkeypatch):
    from .helpers import cli_in_process

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    out = tmp_path / "search"
    status, stdout, stderr = cli_in_process(
        capsys,
        "tune",
        "--demo",
        "--tuner",
        "random",
        "--max-trials",
        2,
        "--epochs",
        1,
        "--families",
        "baseline,augmented",
        "--image-size",
        32,
        "--out",
        out,
    )
    assert status == 0, stderr[-3000:]
    summary = _summary(out)
    assert len(summary["trials"]) == 2
    assert {t["hyperparameters"]["family"] for t in summary["trials"]} <= {"baseline", "augmented"}
    assert (out / "best_model.keras").exists() and "best val_accuracy" in stdout
    status, _, stderr = cli_in_process(
        capsys, "tune", "--demo", "--families", "baseline,resnet", "--out", out
    )
    assert status == 2
    assert stderr.startswith("catdog: error: families: Unknown model 'resnet'. Did you mean")
