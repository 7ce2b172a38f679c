"""Shared fixtures: generated images and datasets, so no test needs the network."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Random float32 pixels in 0..255, as catdog models take them."""
    return rng.uniform(0, 255, size=(n, size, size, 3)).astype("float32")
