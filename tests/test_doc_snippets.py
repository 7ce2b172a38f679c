"""Every snippet of README.md and docs/ runs, and every ``catdog ...`` line parses.

The code blocks are found by mktestdocs (``grab_code_blocks``). Python blocks run in order,
one namespace per page, in a fresh folder holding tiny generated stand-ins for what the
pages take as given (``splits``, ``model``, ``history``, ``cat.jpg``, ``photos/``,
the ImageNet weights file in Keras' cache), and at tiny sizes: every ``epochs=N``
(``fine_tune_epochs=N`` too) and ``max_trials=N`` runs as 1, and ``load_cats_and_dogs``
returns a generated dataset of the same layout instead of downloading. A block already run
on another page (the quick start of README.md and docs/index.md) is not run again. A block
whose first line is ``# not run: <reason>`` (a download, a cluster, another package) is only
compiled. Every ``catdog`` command in a bash block goes through the real parser, and every
inline ``catdog ...`` mention must name existing commands and options, so a misspelt or
removed flag fails here.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
from pathlib import Path

import pytest
from mktestdocs import grab_code_blocks

ROOT = Path(__file__).parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.parent.name not in ("api", "generated")),
]
ran: set[str] = set()  # the blocks run so far
NOT_RUN = re.compile(r"#\s*not run:\s*(\S.*)")
TINY = [(re.compile(r"\b(\w*epochs|max_trials)=\d+"), r"\1=1")]
SIZE = 160  # the models' default input size


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def python_blocks(page: Path) -> list[str]:
    if not page.exists():
        return []
    return grab_code_blocks(page.read_text(encoding="utf-8"), lang="python")


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """What every page may use: a generated dataset, its splits, a small trained model (with
    its history), and ImageNet-named weights in Keras' cache."""
    import keras

    from catdog import build_model, from_directory, train
    from catdog.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("snippet-data")
    data = make_synthetic_dataset(
        root / "cats_and_dogs", images_per_class=6, image_size=(SIZE, SIZE), seed=0
    )
    # the file Keras' MobileNetV2 looks for in its cache before downloading (random weights)
    cache = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"
    cache.mkdir(parents=True, exist_ok=True)
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{SIZE}_no_top.h5"
    if not (cache / name).exists():
        base = keras.applications.MobileNetV2((SIZE, SIZE, 3), include_top=False, weights=None)
        keras.saving.save_model(base, cache / name)
    splits = from_directory(data, image_size=(SIZE, SIZE), batch_size=4, seed=1)
    model = build_model("baseline", filters=(4, 8), dense_units=8)
    history = train(model, splits, epochs=1)
    return {"data": data, "splits": splits, "model": model, "history": history}


@pytest.fixture
def namespace(stand_ins, tmp_path, monkeypatch):
    """A fresh folder and the names the pages take as given, all tiny."""
    import shutil

    import numpy as np
    from PIL import Image

    import catdog
    from catdog import from_directory
    from catdog.models import registry

    monkeypatch.chdir(tmp_path)
    for folder in ("photos", "path/to/images"):
        shutil.copytree(stand_ins["data"], folder)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("uint8")
    Image.fromarray(pixels[0]).save("cat.jpg")
    Image.fromarray(pixels[1]).save("dog.png")
    Image.fromarray(pixels[1]).save("photo.jpg")

    def load_cats_and_dogs(cache_dir=None, **options):  # the download's generated stand-in
        options.setdefault("batch_size", 4)
        return from_directory(stand_ins["data"], **options)

    monkeypatch.setattr(catdog, "load_cats_and_dogs", load_cats_and_dogs)
    # models a page registers (the models guide's "tiny") leave with the page
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._entries()))
    catdog.export(stand_ins["model"], "somewhere/model.keras")
    return {"__name__": "__main__", "catdog": catdog} | {
        name: stand_ins[name] for name in ("splits", "model", "history")
    }


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
def test_python_snippets_run(page, namespace):
    for block in python_blocks(page):
        first = block.lstrip().splitlines()[0]
        if NOT_RUN.match(first):
            compile(block, page_id(page), "exec")  # not run, but still Python
            continue
        assert not first.startswith("# not run"), f"{page_id(page)}: say why it is not run"
        if block in ran:  # the same code on two pages (README and the docs' index) runs once
            continue
        ran.add(block)
        source = block
        for pattern, tiny in TINY:
            source = pattern.sub(tiny, source)
        try:
            exec(compile(source, page_id(page), "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page_id(page)}: this block fails:\n{block}") from error


def split_commands(lines: list[str]) -> list[str]:
    """The ``catdog ...`` commands of shell lines: ``a && catdog b  # c`` gives ``catdog b``."""
    commands = []
    for line in [line for line in lines if re.search(r"(^|[;&|]|\bdo)\s*catdog\s+[-a-z]", line)]:
        command: list[str] = []
        for word in [*shlex.split(line, comments=True), ";"]:
            if word in (";", "&&", "||", "|", "do", "then", ">", ">>", "2>", "<"):
                if command[:1] == ["catdog"]:
                    commands.append(shlex.join(command))
                command = []
            elif word != "...":  # "catdog train ... --strategy multi_worker": options left out
                command.append(word)
    return commands


def catdog_commands(page: Path) -> tuple[list[str], list[str]]:
    """The page's commands: in bash blocks (complete) and in inline code spans (mentions)."""
    text = page.read_text(encoding="utf-8")
    lines = []
    for block in grab_code_blocks(text, lang="bash"):
        lines += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    return split_commands(lines), split_commands(re.findall(r"`(catdog [^`]+)`", prose))


def subparsers():
    import argparse

    from catdog.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, commands.choices


def check_mention(command: str) -> None:
    """A mention (``catdog export --overwrite``) names a command and options it has."""
    parser, choices = subparsers()
    words = shlex.split(command)[1:]
    if words and not words[0].startswith("-"):
        assert words[0] in choices, f"`{command}`: no command {words[0]!r}"
        parser = choices[words[0]]
    options = {o for action in parser._actions for o in action.option_strings}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"`{command}`: no option {word}"


def test_pages_show_catdog_commands():
    found = [c for p in PAGES if p.exists() for c in catdog_commands(p)[0]]
    assert len(found) >= 15, found


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=page_id)
def test_catdog_commands_parse(page, capsys):
    complete, mentions = catdog_commands(page)
    for command in complete:
        if "--help" in command or "-h" in command.split():
            check_mention(command)
            continue
        try:
            args = subparsers()[0].parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"{page_id(page)}: `{command}` does not parse:\n{capsys.readouterr().err}")
        if getattr(args, "tuner", None) == "hyperband":
            assert "--max-trials" not in command, f"{command}: hyperband ignores --max-trials"
    for command in mentions:
        check_mention(command)
        if "hyperband" in command:
            assert "--max-trials" not in command, f"{command}: hyperband ignores --max-trials"


def test_not_run_blocks_say_why():
    for page in PAGES:
        for block in python_blocks(page):
            first = block.lstrip().splitlines()[0]
            if first.startswith("# not run"):
                assert NOT_RUN.match(first), f"{page_id(page)}: {first}"
                ast.parse(block)


class _Parsed(Exception):
    """Raised once an example's parser has accepted its command line."""


def example_commands() -> list[tuple[str, str]]:
    """``(page, "python examples/NN_x.py ARGS")`` for every complete example command shown."""
    found = []
    for page in (p for p in PAGES if p.exists()):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"python (examples/\d\d_\w+\.py)([^`\n#]*)", text):
            if "[" not in match.group(2):  # a synopsis such as "[--data PATH | --demo]"
                found.append((page_id(page), match.group(0).strip()))
    return found


def test_example_commands_parse(monkeypatch):
    """Each ``python examples/...`` command in the docs is accepted by that script's parser."""
    import argparse
    import runpy
    import sys

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        original(parser, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    commands = example_commands()
    assert len(commands) >= 8, commands
    for page, command in commands:
        script, *args = shlex.split(command)[1:]
        monkeypatch.setattr(sys, "argv", [script, *args])
        try:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        except _Parsed:
            continue
        except SystemExit:
            pytest.fail(f"{page}: `{command}` does not parse")
        pytest.fail(f"{page}: `{command}` never parsed its arguments")
