"""Every benchmark figure in the docs comes from a results file in benchmarks/results/.

A page shows a benchmark table in a marked block (``<!-- results: NAME -->``) that
``benchmarks/render.py`` makes from ``benchmarks/results/NAME.json``; a figure changed in a
results file without rerunning the renderer, or a table edited by hand, fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render", ROOT / "benchmarks" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_marked_block_is_what_the_results_files_make(render):
    assert render.stale() == [], "run `python benchmarks/render.py` and commit the pages"


def test_every_results_file_records_its_run(render):
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert {f.stem for f in files} >= {
        "inference",
        "input_pipeline",
        "training",
        "training_1000",
        "training_1000_all",
        "backbones",
        "distributed",
    }
    for path in files:
        data = json.loads(path.read_text())
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["date"]), path.name
        assert data["machine"] and data["rows"], path.name
        assert set(data["versions"]) >= {"catdog"}, path.name
        if path.stem != "real":  # bench_real.py writes its own file
            assert set(data["versions"]) >= {"catdog", "tensorflow", "keras", "numpy"}
            assert data["command"].startswith("python benchmarks/bench_"), path.name
            assert isinstance(data["settings"], dict), path.name
        assert path.stem in render.COLUMNS, f"{path.name}: render.py has no table for it"


def test_every_results_file_has_a_table_in_the_docs(render):
    shown = {
        match[2]
        for page in render.pages()
        for match in render.BLOCK.finditer(page.read_text(encoding="utf-8"))
    }
    assert shown >= set(render.COLUMNS) | {"summary"}


def test_every_table_states_its_run_and_the_noise(render):
    for name in render.COLUMNS:
        data = render.load(name)
        text = render.render(name)
        if data is None:
            assert text.startswith("Not run yet"), name
            continue
        assert data["date"] in text and data["machine"] in text, name
        assert render.noise() in text, name
    summary = render.render("summary")
    assert render.noise() in summary and "2026-" in summary
    assert "226 s on 2026-11-28 and 96 s on 2026-11-29" in render.noise()  # from the files


def test_a_figure_changed_in_a_results_file_fails_the_check(render, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    assert render.stale(results=results) == []
    path = results / "inference.json"
    data = json.loads(path.read_text())
    data["rows"][0]["batch1_ms"] += 1.0
    path.write_text(json.dumps(data))
    found = render.stale(results=results)
    assert any(block.endswith(": inference") for block in found)  # its own table
    assert any(block.endswith(": summary") for block in found)  # and the summary quoting it
    page = "<!-- results: inference -->\nold\n<!-- /results -->\n"
    assert "old" not in render.rewrite(page, results)


# speed figures quoted outside a marked block: "11.5 ms", "478 img/s", "19.4x", "15x faster"
PROSE_FIGURE = re.compile(
    r"\b\d[\d,]*(?:\.\d+)? ?(?:ms|img/s|images/s)\b|\b\d+\.\d+x\b|\b\d+x (?:faster|slower|as)\b"
)


def test_no_speed_figure_is_quoted_outside_a_generated_table(render):
    found = []
    for page in render.pages():
        text = render.BLOCK.sub("", page.read_text(encoding="utf-8"))
        found += [f"{page.relative_to(ROOT)}: {m[0]}" for m in PROSE_FIGURE.finditer(text)]
    assert found == [], "quote figures through a `<!-- results: NAME -->` block"
    assert PROSE_FIGURE.search("on LiteRT, 1.9 ms, 6x faster")
    assert not PROSE_FIGURE.search("a 100x smaller learning rate, 160x160, up to 300 s")
