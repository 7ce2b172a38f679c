"""Prediction and embeddings on Ray Data (``catdog.deploy.ray_data``): the callable classes give
``catdog predict``'s rows in this process (no Ray needed); on a local Ray cluster of real worker
processes every image is scored exactly once with ``catdog predict``'s answers (and embedded
once, as ``image_embeddings`` embeds it), a crashed worker is retried by Ray without duplicate
rows, and a failed run leaves no output file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog.data.synthetic import make_synthetic_dataset
from catdog.deploy.embeddings import image_embeddings
from catdog.deploy.predict import iter_predictions
from catdog.deploy.prediction_files import prediction_row
from catdog.deploy.ray_data import (
    BatchEmbedder,
    BatchPredictor,
    predict_dataset,
    require_ray,
    rows_table,
)
from catdog.errors import InputFileNotFoundError, MissingExtraError

NAMES = ["cats", "dogs"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small untrained two-class model (16x16) saved as a .keras file."""
    model = catdog.build_baseline_model(
        input_shape=(16, 16, 3), filters=(4,), dense_units=8, class_names=NAMES
    )
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    """300 JPEGs, sorted, the 8th of them truncated (unreadable)."""
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("photos"), images_per_class=100, image_size=(24, 24), seed=4
    )
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    assert len(paths) == 300
    data = Path(paths[7]).read_bytes()
    Path(paths[7]).write_bytes(data[: len(data) // 2])
    return paths


def expected_rows(model_file: Path, paths: list[str]) -> dict[str, dict]:
    """``catdog predict``'s rows (TensorFlow engine) of ``paths``, by path."""
    model = catdog.load_model(model_file)
    rows = (prediction_row(p) for p in iter_predictions(model, paths, engine="tensorflow"))
    return {row["path"]: row for row in rows}


def assert_same_rows(got: list[dict], expected: dict[str, dict]) -> None:
    """Every expected row exactly once, texts equal, numbers within float tolerance."""
    assert sorted(row["path"] for row in got) == sorted(expected)  # each image once
    for row in got:
        want = expected[row["path"]]
        assert list(row) == list(want)
        for key, value in want.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, abs=1e-5), key
            else:
                assert row[key] == value, key


def test_the_batch_predictor_gives_catdog_predicts_rows_without_ray(model_file, photos):
    pa = pytest.importorskip("pyarrow")  # Ray Data's blocks; installed with it
    predictor = BatchPredictor(model_file, engine="tensorflow", batch_size=16)
    table = predictor({"path": np.array(photos[:40], dtype=object)})
    rows = pa.Table.from_pandas(table).to_pylist()  # as Ray Data stores a block
    assert_same_rows(rows, expected_rows(model_file, photos[:40]))
    assert rows[7]["error"] and rows[7]["probability"] is None  # the unreadable file
    only_errors = pa.Table.from_pandas(rows_table([rows[7]]))  # a batch of unreadable files
    assert only_errors.schema == pa.Table.from_pandas(table).schema


def test_the_batch_embedder_gives_image_embeddings_without_ray(tmp_path, photos):
    from catdog.models.transfer import build_transfer_model

    model = build_transfer_model((32, 32, 3), weights=None)
    model.save(tmp_path / "transfer.keras")
    embedder = BatchEmbedder(tmp_path / "transfer.keras", engine="tensorflow")
    out = embedder({"path": np.array(photos[:10], dtype=object)})
    expected = image_embeddings(model, photos[:10], engine="tensorflow")
    assert list(out["path"]) == expected.paths and len(expected.paths) == 9  # 8th unreadable
    np.testing.assert_allclose(out["embedding"], expected.vectors, atol=1e-5)


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    how = r'pip install "ray\[data\]".*pip install "\.\[ray\]"'
    with pytest.raises(MissingExtraError, match=how):
        require_ray()


def test_a_missing_model_file_is_refused_before_ray_runs(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="every Ray worker"):
        predict_dataset(None, tmp_path / "missing.keras")


# ----------------------------------------------------------------------- on a Ray cluster
@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two CPUs: its workers are separate processes."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_two_ray_workers_score_every_image_once_as_catdog_predict_does(
    ray_cluster, model_file, photos, tmp_path
):
    from catdog.deploy.ray_data import image_dataset, write_dataset_rows

    rows = predict_dataset(
        image_dataset(photos, blocks=8), model_file, workers=2, engine="tensorflow", batch_size=32
    )
    out = tmp_path / "predictions.jsonl"
    assert write_dataset_rows(rows, out) == 300
    assert_same_rows(read_jsonl(out), expected_rows(model_file, photos))
    assert sorted(os.listdir(tmp_path)) == ["predictions.jsonl"]  # no temporary file left


def crashing_once(marker: Path):
    """A ``BatchPredictor`` whose first call anywhere kills its worker process (``os._exit``),
    after creating ``marker``; later calls predict."""

    class CrashingOnce(BatchPredictor):
        def __call__(self, batch):
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies mid-batch, its batch unanswered
            return super().__call__(batch)

    return CrashingOnce


@pytest.mark.slow
def test_a_crashed_ray_worker_is_retried_without_duplicate_rows(
    ray_cluster, model_file, photos, tmp_path
):
    from catdog.deploy.ray_data import image_dataset, write_dataset_rows

    marker = tmp_path / "crashed"
    rows = image_dataset(photos, blocks=8).map_batches(
        crashing_once(marker),
        fn_constructor_args=(str(model_file),),
        fn_constructor_kwargs={"engine": "tensorflow"},
        batch_size=32,
        batch_format="numpy",
        compute=ray_cluster.data.ActorPoolStrategy(size=2),
    )
    out = tmp_path / "predictions.csv"
    assert write_dataset_rows(rows, out) == 300
    assert marker.exists()  # a worker did die
    paths = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert sorted(paths) == sorted(photos)  # each image once: no duplicate, none lost


@pytest.mark.slow
def test_a_failed_ray_run_leaves_no_output_file(ray_cluster, model_file, photos, tmp_path):
    from catdog.deploy.ray_data import image_dataset, write_dataset_rows

    folder = tmp_path / "photos"
    folder.mkdir()
    kept = [folder / Path(p).name for p in photos[:64]]
    for source, copy in zip(photos[:64], kept, strict=True):
        copy.write_bytes(Path(source).read_bytes())
    rows = predict_dataset(image_dataset(kept, blocks=4), model_file, batch_size=16)
    kept[-1].unlink()  # gone once the paths are listed: its batch raises on the worker
    out = tmp_path / "predictions.jsonl"
    with pytest.raises(Exception, match="does not exist"):
        write_dataset_rows(rows, out)
    assert sorted(os.listdir(tmp_path)) == ["photos"]  # no output, no temporary file


@pytest.mark.slow
def test_two_ray_workers_embed_every_readable_image_once(ray_cluster, photos, tmp_path):
    from catdog.deploy.ray_data import embed_dataset, image_dataset
    from catdog.models.transfer import build_transfer_model

    model = build_transfer_model((32, 32, 3), weights=None)
    model.save(tmp_path / "transfer.keras")
    dataset = image_dataset(photos[:64], blocks=4)
    rows = embed_dataset(dataset, tmp_path / "transfer.keras", workers=2, engine="tensorflow")
    got = {row["path"]: row["embedding"] for row in rows.iter_rows()}
    expected = image_embeddings(model, photos[:64], engine="tensorflow")
    assert sorted(got) == sorted(expected.paths) and len(got) == 63  # the 8th does not decode
    for path, vector in zip(expected.paths, expected.vectors, strict=True):
        np.testing.assert_allclose(got[path], vector, atol=1e-5)
