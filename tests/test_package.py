import subprocess
import sys
from pathlib import Path

import pytest

import catdog


def test_import_is_light_and_offline():
    code = (
        "import sys, socket\n"
        "def no_network(*a, **k):\n"
        "    raise AssertionError('import catdog touched the network')\n"
        "socket.socket.connect = no_network\n"
        "import catdog\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'keras_tuner', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(heavy, catdog.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "[]"


def test_version_matches_the_project():
    root = Path(__file__).parents[1]
    changelog = (root / "CHANGELOG.md").read_text()
    assert f"## {catdog.__version__} — " in changelog  # the version is released in the changelog
    assert changelog.index("## Unreleased") < changelog.index(f"## {catdog.__version__}")
    assert 'dynamic = ["version"]' in (root / "pyproject.toml").read_text()


def _type_checking_imports() -> dict:
    """``{name: module}`` of the ``if TYPE_CHECKING:`` imports of catdog/__init__.py."""
    import ast

    tree = ast.parse(Path(catdog.__file__).read_text())
    block = next(
        node for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )  # fmt: skip
    return {
        alias.name: node.module.removeprefix("catdog.")
        for node in block.body
        for alias in node.names
    }


def test_the_type_checking_copy_is_the_lazy_table():
    assert _type_checking_imports() == catdog._EXPORTS
    assert not set(catdog._MOVED) & set(catdog._EXPORTS)


def test_a_name_moved_out_of_the_root_still_resolves_with_a_warning_naming_its_module():
    import importlib
    import warnings

    for name, module in catdog._MOVED.items():
        catdog.__dict__.pop(name, None)  # not cached by an earlier use
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(catdog, name)
        assert value is getattr(importlib.import_module(f"catdog.{module}"), name), name
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert f"catdog.{module}" in str(caught[0].message), name
        assert name not in catdog.__all__ and name not in dir(catdog)


def test_the_old_calibration_measures_module_still_resolves_with_a_warning():
    import warnings

    from catdog.report import calibration, reliability

    for name in ("expected_calibration_error", "risk_coverage", "ECE_BINS"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert getattr(calibration, name) is getattr(reliability, name)
        assert [w.category for w in caught] == [DeprecationWarning]
        assert "catdog.report.reliability" in str(caught[0].message)
    with pytest.raises(AttributeError, match="no attribute 'fit_temperature'"):
        calibration.fit_temperature  # noqa: B018 (a name that never lived there)


def test_every_public_name_resolves():
    for name in catdog.__all__:
        assert getattr(catdog, name) is not None, name
    assert set(catdog.__all__) <= set(dir(catdog))
    assert callable(catdog.export) and callable(catdog.build_transfer_model)
    assert catdog.training.tuning.CatDogHyperModel is not None  # submodules load on first use


def test_no_text_promises_an_install_from_the_package_index():
    """`catdog` on PyPI is another project: nothing may tell users to `pip install catdog`."""
    import re

    root = Path(__file__).parents[1]
    promise = re.compile(r"""pip install\s+["']?catdog(\[[^\]]*\])?["']?(?=[\s`)]|$)""")
    texts = [root / "README.md", *root.glob("docs/**/*.md"), *root.glob("examples/*.py")]
    texts += [*root.glob("src/catdog/*.py")]
    found = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in texts
        for match in promise.finditer(path.read_text())
    ]
    assert found == []
    assert promise.search('run pip install "catdog[tuner]" now')
    assert promise.search("pip install catdog")
    assert not promise.search('pip install ".[tuner]"')


def test_the_command_line_imports_light():
    """``catdog --help`` answers at once: the CLI's modules import no TensorFlow, Keras or
    matplotlib until a command needs them (imports inside functions keep them out)."""
    code = (
        "import sys\n"
        "import catdog.cli\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'keras_tuner', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "[]"


def test_each_package_docstring_maps_every_public_module_of_its_room():
    import importlib
    import pkgutil

    for room in ("data", "models", "training", "report", "deploy", "runs"):
        package = importlib.import_module(f"catdog.{room}")
        modules = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name[0] != "_"]
        missing = [m for m in modules if f"`{m}`" not in package.__doc__]
        assert not missing, f"catdog.{room}'s docstring leaves out {missing}"
