"""Every example runs as a user runs it (``--demo``), at a tiny size, in the documented order."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).parents[1] / "examples"
TINY = ["--demo", "--demo-images", "12", "--image-size", "32"]
ONE_EPOCH = ["--epochs", "1"]
# (script, extra options): 06 scores the models that 02-05 wrote into the same --out
RUNS = [
    ("01_explore_data.py", []),
    ("02_first_model.py", ONE_EPOCH),
    ("03_augmentation.py", ONE_EPOCH),
    ("04_preprocessing.py", ONE_EPOCH),
    (
        "05_transfer_learning.py",
        [*ONE_EPOCH, "--cache-features", "--fine-tune-epochs", "1", "--unfreeze-from", "0.97"],
    ),
    ("06_score_on_test.py", []),
    ("07_tune_downstream.py", [*ONE_EPOCH, "--trials", "2"]),
    ("08_understand.py", []),
]


def run_example(script: str, args: list[str]) -> tuple[int, str, str]:
    """Run ``examples/script`` in this process as ``__main__``; return (status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv, path = sys.argv, sys.path
    sys.argv, sys.path = [str(EXAMPLES / script), *args], [str(EXAMPLES), *sys.path]
    status = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv, sys.path = argv, path
        sys.modules.pop("_common", None)
    return status, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """Run all examples in order into one --out folder; generated data goes to a temp cache."""
    out = tmp_path_factory.mktemp("examples")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))
        results = {}
        for script, extra in RUNS:
            status, stdout, stderr = run_example(script, [*TINY, *extra, "--out", str(out)])
            assert status == 0, f"{script} failed:\n{stderr[-3000:]}"
            results[script] = stdout
    return out, results


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_every_example_is_run_here():
    scripts = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))
    assert scripts == [script for script, _ in RUNS]


@pytest.mark.slow  # runs every example in turn (about 45 s)
def test_explore_data(example_runs):
    out, printed = example_runs
    text = printed["01_explore_data.py"]
    assert "train: {'cats': 12, 'dogs': 12}" in text
    assert "majority baseline: 50.0%" in text
    assert "files shared by validation and test: 0" in text
    assert png_size(out / "samples.png") == (660, 460)
    assert png_size(out / "label_counts.png") == (500, 360)


@pytest.mark.slow  # runs every example in turn (about 45 s)
@pytest.mark.parametrize("name", ["baseline", "augmented", "preprocessed", "transfer"])
def test_training_examples_write_model_and_curves(example_runs, name):
    out, _ = example_runs
    assert (out / name / "model.keras").stat().st_size > 10_000
    assert png_size(out / name / "history.png") == (1000, 400)


@pytest.mark.slow  # runs every example in turn (about 45 s)
def test_augmentation_preview_and_stand_in_weights(example_runs):
    out, printed = example_runs
    assert png_size(out / "augmented" / "augmentation.png") == (1100, 460)  # 9 images, 2 rows
    assert (out / "transfer" / "stand_in.weights.h5").is_file()  # --demo: no ImageNet download
    assert "82,114 trainable (the head)" in printed["05_transfer_learning.py"]


@pytest.mark.slow  # runs every example in turn (about 45 s)
def test_score_on_test_compares_all_four(example_runs):
    out, printed = example_runs
    table = (out / "comparison.md").read_text().splitlines()
    assert table[0].startswith("| model | post validation | post test | catdog validation")
    assert [row.split("|")[1].strip() for row in table[2:6]] == [
        "A. first model",
        "B. data augmentation",
        "C. preprocessing",
        "D. transfer learning",
    ]
    assert "96-97%" in table[5] and "Test split:" in table[-1]
    assert table[0].endswith("| catdog test (95% interval) |")
    assert "Best vs runner-up:" in table[-1] and "points;" in table[-1]
    reports = json.loads((out / "comparison.json").read_text())
    assert sorted(reports) == ["augmented", "baseline", "preprocessed", "transfer"]
    assert {report["count"] for report in reports.values()} == {2}  # the same test files
    assert "best on the test split:" in printed["06_score_on_test.py"]
    best = max(reports, key=lambda name: reports[name]["accuracy"])
    assert (
        (out / "report.txt")
        .read_text()
        .startswith(f"examples: 2   loss: {reports[best]['loss']:.4f}")
    )
    assert png_size(out / "confusion_matrix.png")[0] > 0
    assert (out / "misclassified.png").is_file()


@pytest.mark.slow  # runs every example in turn (about 45 s)
def test_tuning_example_restricts_the_space(example_runs):
    out, printed = example_runs
    text = printed["07_tune_downstream.py"]
    best = ast.literal_eval(text.split("best hyperparameters: ", 1)[1].splitlines()[0])
    assert best["family"] in ("baseline", "preprocessed")
    assert best["dense_units"] in (32, 64, 128) and 3e-4 <= best["learning_rate"] <= 3e-3
    assert best.get("kernel_size", 3) == 3  # not searched: catdog's default
    assert (out / "tuning" / "best.keras").is_file()
    assert "accuracy:" in text.split("best hyperparameters:")[1]  # the test report


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    status, _, stderr = run_example("06_score_on_test.py", [*TINY, "--out", str(tmp_path)])
    assert status == 2 and "Traceback" not in stderr
    assert "run examples/02_first_model.py first" in stderr.strip().splitlines()[-1]
    status, _, stderr = run_example("01_explore_data.py", ["--data", str(tmp_path / "nope")])
    assert status == 2 and stderr.startswith("error:") and "nope" in stderr


def test_an_example_runs_as_a_script(tmp_path):
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "01_explore_data.py"), *TINY, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "label_counts.png").is_file() and "majority baseline" in done.stdout


@pytest.mark.slow  # runs every example in turn (about 45 s)
def test_understanding_example_draws_gradcam_and_the_lr_finder(example_runs):
    out, printed = example_runs
    assert png_size(out / "understand" / "gradcam.png")[0] > 500
    assert (out / "understand" / "lr_find.png").is_file()
    text = printed["08_understand.py"]
    assert "with flip TTA:" in text and "suggested learning rate:" in text
