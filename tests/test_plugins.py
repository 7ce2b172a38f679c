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


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A package that names a module in the ``catdog.models`` entry points, on sys.path as
    pip would install it; the registry is reloaded and restored afterwards."""
    (tmp_path / "tiny_plugin_models.py").write_text(PLUGIN)
    info = tmp_path / "tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[catdog.models]\ntiny = tiny_plugin_models\n")
    broken = tmp_path / "broken_plugin-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[catdog.models]\nbroken = no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.delitem(sys.modules, "tiny_plugin_models", raising=False)
    return tmp_path


def test_a_plugin_model_is_listed_and_trained_by_name(
    installed_plugin, synthetic_root, tmp_path, capsys, caplog
):
    assert main(["models", "*plugin*"]) == 0
    listed = capsys.readouterr().out
    assert "tiny_plugin" in listed and "A plugin's tiny CNN" in listed
    assert "broken" in caplog.text and "no_such_module" in caplog.text  # logged, left out
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
