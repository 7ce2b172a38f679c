"""The documentation builds with ``mkdocs build --strict`` and says what the code does."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built strictly: broken links, missing pages, images or API names fail it."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_cli_reference_is_generated_from_the_parser(site):
    from catdog.cli import build_parser

    text = text_of(site / "cli" / "index.html")
    (subparsers,) = [
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ]
    commands = list(subparsers.choices)
    assert {"review", "add-class", "suggest"} <= set(commands) and len(commands) == 12
    for command in commands:
        assert f"usage: catdog {command}" in text, command
    assert "--fine-tune-epochs FINE_TUNE_EPOCHS" in text
    assert "<!-- catdog-help" not in (site / "cli" / "index.html").read_text()


def public_modules() -> list[str]:
    """catdog's modules below the package, as ``"models.registry"``: one API page each."""
    import pkgutil

    import catdog

    return [
        info.name.removeprefix("catdog.")
        for info in pkgutil.walk_packages(catdog.__path__, "catdog.")
        if not info.ispkg
        and not any(part.startswith("_") for part in info.name.split("."))
        and info.name != "catdog.cli"
    ]


def test_api_reference_covers_every_public_name(site):
    import catdog

    pages = {p.parent.name: (p, p.read_text()) for p in (site / "api").glob("*/index.html")}
    assert set(pages) == set(public_modules())
    anchors = "".join(page for _, page in pages.values())
    for name, module in catdog._EXPORTS.items():
        assert f'id="catdog.{module}.{name}"' in anchors, f"{name} is not documented"


def test_results_page_shows_the_generated_table_and_figures(site):
    table = (ROOT / "docs" / "generated" / "comparison.md").read_text().splitlines()
    text = text_of(site / "results" / "index.html")
    for row in table[2:6]:  # each model's row, as example 06 wrote it
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all(cell in text for cell in cells), row
    for image in (ROOT / "docs" / "images").glob("*.png"):
        assert (site / "images" / image.name).read_bytes() == image.read_bytes()


def test_examples_page_names_every_example():
    page = (ROOT / "docs" / "examples.md").read_text()
    for script in (ROOT / "examples").glob("[0-9][0-9]_*.py"):
        assert f"python examples/{script.name} --demo" in page, script.name


def test_readme_links_the_docs_and_examples():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/index.md)" in readme and "(examples/)" in readme
    assert "mkdocs build --strict" in readme


def test_docstring_examples_run():
    """Every ``>>>`` example in catdog's docstrings runs; the rest are plain code blocks."""
    import doctest
    import importlib

    import catdog

    failed = attempted = 0
    for name in [*public_modules(), "_rules", "report._figures", "cli"]:
        module = importlib.import_module(f"catdog.{name}")
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        failed, attempted = failed + result.failed, attempted + result.attempted
        assert "doctest: +SKIP" not in Path(module.__file__).read_text(), module.__name__
    result = doctest.testmod(catdog, verbose=False)
    failed, attempted = failed + result.failed, attempted + result.attempted
    assert failed == 0 and attempted >= 20, (failed, attempted)
