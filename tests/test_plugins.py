"""Models registered by installed packages (the ``catdog.models`` entry-point group)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from catdog.cli import main
from catdog.models import registry

PLUGIN = textwrap.dedent(
    """
    from catdog import build_cnn_model, register_model

    @register_model("tiny_plugin", input_size=32, description="A plugin's tiny CNN")
    def build_tiny_plugin_model(input_shape=(32, 32, 3), num_classes=2, **kwargs):
        return build_cnn_model(input_shape, num_classes, filters=(4,), dense_units=8, **kwargs)
    """
)


def install_plugin(folder, name: str, module: str, source: str | None = None) -> None:
    """Write a package ``name`` into ``folder`` as pip would install it: its ``catdog.models``
    entry point names ``module``, written from ``source`` (none: a module that is not there)."""
    if source is not None:
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[catdog.models]\n{name} = {module}\n")


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A folder on sys.path for packages made with ``install_plugin``; the registry is reloaded
    (with their models) on next use and restored afterwards."""
    registry.list_models()  # catdog's own models, in the registry that is restored afterwards
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADED", False)
    yield folder
    for module in folder.glob("*.py"):
        sys.modules.pop(module.stem, None)


@pytest.fixture
def installed_plugin(plugin_folder):
    """The tiny plugin, and a broken one whose entry point names a module that is not there."""
    install_plugin(plugin_folder, "tiny_plugin", "tiny_plugin_models", PLUGIN)
    install_plugin(plugin_folder, "broken_plugin", "no_such_module")
    return plugin_folder


def test_a_plugin_model_is_listed_and_trained_by_name(
    installed_plugin, synthetic_root, tmp_path, capsys, caplog
):
    assert main(["models", "*plugin*"]) == 0
    listed = capsys.readouterr().out
    assert "tiny_plugin" in listed and "A plugin's tiny CNN" in listed
    assert "broken_plugin" in caplog.text and "no_such_module" in caplog.text  # logged, left out
    out = tmp_path / "run"
    status = main(
        [
            "train",
            "--model",
            "tiny_plugin",
            "--data",
            str(synthetic_root),
            "--epochs",
            "1",
            "--out",
            str(out),
        ]  # fmt: skip
    )
    assert status == 0 and (out / "model.keras").is_file()
    assert '"model": "tiny_plugin"' in (out / "config.json").read_text()


@pytest.mark.parametrize("taken", ["baseline", "transfer"])
def test_a_plugin_that_takes_a_catdog_model_name_is_left_out(plugin_folder, taken, capsys, caplog):
    install_plugin(
        plugin_folder,
        "clashing_plugin",
        "clashing_plugin_models",
        f"""
        from catdog import build_cnn_model, register_model

        @register_model("new_plugin_model")
        def build_new(input_shape=(32, 32, 3), num_classes=2, **kwargs):
            return build_cnn_model(input_shape, num_classes, filters=(4,), dense_units=8)

        @register_model({taken!r}, description="the plugin's own")
        def build_taken(input_shape=(32, 32, 3), num_classes=2, **kwargs):
            return build_new(input_shape, num_classes)
        """,
    )
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "the plugin's own" not in listed and "new_plugin_model" not in listed  # left out whole
    assert registry.describe_model(taken) != "the plugin's own"  # catdog's own model stays
    assert registry.model_spec(taken).family != "custom"
    assert "clashing_plugin" in caplog.text and repr(taken) in caplog.text  # and logged


def test_a_plugin_that_exits_at_import_is_left_out(plugin_folder, capsys, caplog):
    install_plugin(
        plugin_folder, "exiting_plugin", "exiting_plugin_models", "import sys\nsys.exit(3)\n"
    )
    install_plugin(plugin_folder, "tiny_plugin", "tiny_plugin_models", PLUGIN)
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "baseline" in listed and "tiny_plugin" in listed  # the others are loaded
    assert "exiting_plugin" in caplog.text and "SystemExit" in caplog.text
    assert registry.check_model_name("tiny_plugin") == "tiny_plugin"  # catdog train's lookup
