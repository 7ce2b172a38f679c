"""Plain helpers shared by the test files (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np

import catdog
from catdog.runs.config import RunConfig


def random_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Random float32 pixels in 0..255, as catdog models take them."""
    return rng.uniform(0, 255, size=(n, size, size, 3)).astype("float32")


def cli_in_process(capsys, *args) -> tuple[int, str, str]:
    """``catdog ARGS`` in this process (TensorFlow already imported): (status, stdout, stderr)."""
    from catdog.cli import main

    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(capsys, *argv) -> str:
    """Run the CLI in process; assert exit 2 with one error line; return that line."""
    from catdog.cli import main

    assert main([str(a) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("catdog: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def small_config(root, out, **changes) -> RunConfig:
    config = RunConfig(
        out=Path(out),
        model="baseline",
        data=str(root),
        epochs=1,
        image_size=16,
        batch_size=16,
        verbose=0,
        model_kwargs={"filters": [4], "dense_units": 8},
    )
    return replace(config, **changes)


def copy_run(config: RunConfig, target: Path) -> RunConfig:
    shutil.copytree(config.out, target)
    return replace(config, out=target)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()
    """
)


def rename_class(root: Path, old: str, new: str) -> None:
    for split in ("train", "validation"):
        (root / split / old).rename(root / split / new)


def tiny(class_names=None, classes=2):
    return catdog.build_baseline_model(
        input_shape=(16, 16, 3), filters=(4,), dense_units=8, class_names=class_names,
        num_classes=None if class_names else classes,
    )  # fmt: skip
