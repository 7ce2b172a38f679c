"""Prediction and embeddings of many images on a Ray cluster: Ray Data's ``map_batches`` runs
catdog's own prediction in a pool of worker processes, each loading the model once.

[`image_dataset`][catdog.deploy.ray_data.image_dataset] makes a Ray ``Dataset`` of image paths
(found as ``catdog predict`` finds them);
[`predict_dataset`][catdog.deploy.ray_data.predict_dataset] maps it to the rows of
``catdog predict`` ([`prediction_row`][catdog.deploy.prediction_files.prediction_row]: class,
probabilities, the unknown answer, why a file could not be read) by
[`BatchPredictor`][catdog.deploy.ray_data.BatchPredictor], and
[`embed_dataset`][catdog.deploy.ray_data.embed_dataset] to image embeddings by
[`BatchEmbedder`][catdog.deploy.ray_data.BatchEmbedder].
[`write_dataset_rows`][catdog.deploy.ray_data.write_dataset_rows] streams the rows to one
``.csv`` or ``.jsonl`` file written under a temporary name and renamed at the end. Ray is the
``ray`` extra (``pip install ".[ray]"`` in catdog's source, or ``pip install "ray[data]"``).
The model file and the images must be readable at
the same paths on every node (a shared file system).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catdog._rules import check_int
from catdog.data.files import image_files
from catdog.data.images import PREDICT_BATCH_SIZE
from catdog.deploy.embeddings import embedding_model, image_embeddings
from catdog.deploy.litert import LiteRTModel
from catdog.deploy.predict import Predictor, iter_predictions
from catdog.deploy.prediction_files import prediction_model, prediction_row, write_rows
from catdog.errors import InputFileNotFoundError, MissingExtraError

if TYPE_CHECKING:
    import pandas as pd
    import ray.data

INSTALL = 'pip install "ray[data]" (or catdog\'s extra: pip install ".[ray]" in its source)'
"""How to install what this module needs (Ray Data)."""

_TEXT_COLUMNS = {"path", "class", "error"}


def require_ray():
    """The ``ray`` module with Ray Data loaded, or a catdog error saying how to install it.

    Examples:
        ```python
        ray = require_ray()
        ray.init(num_cpus=2)
        ```
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            f"Predicting on Ray needs Ray Data, which is not installed: {INSTALL}."
        ) from None
    return ray


def image_dataset(images, *, blocks: int | None = None) -> ray.data.Dataset:
    """A Ray ``Dataset`` with one row ``{"path": ...}`` per image file of ``images`` (a file, a
    folder searched recursively, or a list of them, as ``catdog predict`` takes them), in
    ``blocks`` blocks (default: Ray's choice; more blocks spread the work more evenly).

    Examples:
        ```python
        image_dataset("photos/").count()
        # 300
        ```
    """
    ray = require_ray()
    given = [images] if isinstance(images, str | os.PathLike) else list(images)
    rows = [{"path": path} for path in image_files(given)]
    return ray.data.from_items(rows, override_num_blocks=blocks)


class BatchPredictor:
    """A callable class for Ray Data's ``map_batches``: each worker loads the model once (a
    ``.keras`` file run on ``engine`` by a [`Predictor`][catdog.deploy.predict.Predictor], or a
    ``.tflite`` file by catdog's LiteRT engine, as ``catdog predict`` loads them), then turns
    each batch of ``path`` values into the rows of ``catdog predict``.

    Examples:
        ```python
        rows = dataset.map_batches(
            BatchPredictor, fn_constructor_args=("model.keras",), concurrency=2
        )
        ```
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        *,
        engine: str = "auto",
        tta: str | None = None,
        batch_size: int = PREDICT_BATCH_SIZE,
    ):
        model, self.class_names = prediction_model(model_path, class_names)
        if not isinstance(model, LiteRTModel):  # traced or converted once per worker
            model = Predictor(model, engine=engine, batch_size=batch_size)
        self.model, self.tta, self.batch_size = model, tta, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> pd.DataFrame:
        """The rows ([`prediction_row`][catdog.deploy.prediction_files.prediction_row]) of a
        batch's images, as a table with the same columns for every batch."""
        paths = [str(path) for path in batch["path"]]
        predictions = iter_predictions(
            self.model, paths, self.class_names, tta=self.tta, batch_size=self.batch_size
        )
        return rows_table([prediction_row(p) for p in predictions])


def rows_table(rows: list[dict]) -> pd.DataFrame:
    """Prediction rows as a pandas table whose columns have the same types in every batch (text,
    nullable booleans, floats), so Ray's blocks share one schema even when a batch holds only
    unreadable files; a missing value reads back as ``None``.

    Examples:
        ```python
        rows_table([{"path": "a.jpg", "class": "cats", "probability": 0.9, "error": None}])
        ```
    """
    import pandas as pd

    table = pd.DataFrame(rows)
    for column in table.columns:
        kind = "string" if column in _TEXT_COLUMNS else "float64"
        table[column] = table[column].astype("boolean" if column == "unknown" else kind)
    return table


class BatchEmbedder:
    """A callable class for Ray Data's ``map_batches``: each worker loads a ``.keras`` model
    once and makes its [`embedding_model`][catdog.deploy.embeddings.embedding_model] a
    [`Predictor`][catdog.deploy.predict.Predictor] on ``engine``; each batch of ``path`` values
    gives ``path`` and ``embedding`` (a unit vector) for every image that decodes (one that
    does not is left out with a warning, as
    [`image_embeddings`][catdog.deploy.embeddings.image_embeddings] does).

    Examples:
        ```python
        vectors = dataset.map_batches(
            BatchEmbedder, fn_constructor_args=("model.keras",), concurrency=2
        )
        ```
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        engine: str = "auto",
        batch_size: int = PREDICT_BATCH_SIZE,
    ):
        from catdog.models.saving import load_model

        model = embedding_model(load_model(model_path))
        self.predictor = Predictor(model, engine=engine, batch_size=batch_size, probabilities=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"path": (n,), "embedding": (n, d)}`` of the batch's images that decode."""
        embeddings = image_embeddings(self.predictor, [str(path) for path in batch["path"]])
        return {"path": np.asarray(embeddings.paths, dtype=object), "embedding": embeddings.vectors}


def predict_dataset(
    dataset: ray.data.Dataset,
    model_path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    workers: int = 1,
    engine: str = "auto",
    tta: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
    **ray_remote_args: Any,
) -> ray.data.Dataset:
    """``dataset`` (a ``path`` column, e.g. from
    [`image_dataset`][catdog.deploy.ray_data.image_dataset]) mapped to the rows of ``catdog
    predict`` by ``workers`` [`BatchPredictor`][catdog.deploy.ray_data.BatchPredictor] processes,
    ``batch_size`` images a batch. Lazy, as Ray Datasets are: nothing runs until it is consumed
    (written, iterated). Rows come in no set order. ``ray_remote_args`` go to the workers (e.g.
    ``num_cpus=1``, ``max_restarts=3``).

    Examples:
        ```python
        rows = predict_dataset(image_dataset("photos/"), "model.keras", workers=2)
        write_dataset_rows(rows, "predictions.csv")
        ```
    """
    _check_model_file(model_path)
    return dataset.map_batches(
        BatchPredictor,
        fn_constructor_args=(str(model_path), None if class_names is None else list(class_names)),
        fn_constructor_kwargs={"engine": engine, "tta": tta, "batch_size": batch_size},
        batch_size=batch_size,
        batch_format="numpy",
        compute=_workers(workers),
        **ray_remote_args,
    )


def embed_dataset(
    dataset: ray.data.Dataset,
    model_path: str | os.PathLike,
    *,
    workers: int = 1,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
    **ray_remote_args: Any,
) -> ray.data.Dataset:
    """``dataset`` (a ``path`` column) mapped to ``path`` and ``embedding`` by ``workers``
    [`BatchEmbedder`][catdog.deploy.ray_data.BatchEmbedder] processes; lazy, in no set order.

    Examples:
        ```python
        vectors = embed_dataset(image_dataset("photos/"), "model.keras", workers=2)
        vectors.write_parquet("embeddings/")
        ```
    """
    _check_model_file(model_path)
    return dataset.map_batches(
        BatchEmbedder,
        fn_constructor_args=(str(model_path),),
        fn_constructor_kwargs={"engine": engine, "batch_size": batch_size},
        batch_size=batch_size,
        batch_format="numpy",
        compute=_workers(workers),
        **ray_remote_args,
    )


def _workers(workers: int):
    """Ray Data's pool of ``workers`` actors (each holds a model), checked."""
    ray = require_ray()
    return ray.data.ActorPoolStrategy(size=check_int("workers", workers))


def _check_model_file(model_path: str | os.PathLike) -> None:
    """Refuse a missing model file here, before Ray starts workers that would fail on it."""
    if not Path(model_path).is_file():
        raise InputFileNotFoundError(
            f"Model file {str(model_path)!r} does not exist; pass a .keras or .tflite file "
            "that every Ray worker can read at that path."
        )


def write_dataset_rows(
    rows: ray.data.Dataset, path: str | os.PathLike, *, overwrite: bool = False
) -> int:
    """Run ``rows`` (from [`predict_dataset`][catdog.deploy.ray_data.predict_dataset]) and write
    them to one ``.csv`` or ``.jsonl`` file as they come, as ``catdog predict --output`` writes
    ([`write_rows`][catdog.deploy.prediction_files.write_rows]): under a temporary name,
    renamed once the last row is in, so a run that fails leaves no ``path``. Returns how many.

    Examples:
        ```python
        write_dataset_rows(predict_dataset(dataset, "model.keras"), "predictions.jsonl")
        # 300
        ```
    """
    plain = ({key: _plain(value) for key, value in row.items()} for row in rows.iter_rows())
    return write_rows(plain, path, overwrite=overwrite)


def _plain(value):
    """A value of a Ray row as Python writes it: NumPy scalars as numbers, NaN as ``None``."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and value != value else value
