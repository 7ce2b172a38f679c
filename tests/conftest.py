"""Shared fixtures: generated images and datasets, so no test needs the network."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# caches (demo data, converted LiteRT models) go to a fresh folder, not the user's ~/.keras
os.environ["KERAS_HOME"] = __import__("tempfile").mkdtemp(prefix="catdog-tests-keras-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small generated cats/dogs dataset (train 40+40, validation 20+20) at 64x64."""
    from catdog.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic"), images_per_class=40, image_size=(64, 64), seed=3
    )


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_root):
    from catdog.data.pipelines import from_directory

    return from_directory(synthetic_root, image_size=(64, 64), batch_size=16, seed=5)


@pytest.fixture(scope="session")
def finished_run(synthetic_root, tmp_path_factory):
    """A finished baseline run folder (16x16, 1 epoch); copy it before changing it."""
    from catdog.runs.job import run_training

    from .helpers import small_config

    config = small_config(synthetic_root, tmp_path_factory.mktemp("finished") / "run")
    run_training(config)
    return config
