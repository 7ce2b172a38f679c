"""Embeddings (catdog.embed, Embeddings) and the search among a run's images (catdog.similar,
``catdog similar``), on generated images.

The model is a transfer model with a VGG16 base at 32x32, randomly initialised: VGG16 has no
BatchNorm, so its random features keep enough of an image (colours, layout) for a resized,
re-encoded copy to find its original; MobileNetV2's random features (also with stand-in
weights) do not. Real photos need the ImageNet weights.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SIDE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from catdog.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("embeddings") / "data", 12, image_size=(64, 64), seed=3
    )


@pytest.fixture(scope="module")
def model():
    import keras

    from catdog.models.transfer import build_transfer_model

    keras.utils.set_random_seed(0)
    return build_transfer_model(
        (SIDE, SIDE, 3), backbone="vgg16", weights=None, class_names=["cats", "dogs"]
    )


def make_run(folder: Path, model, data: Path, seed: int = 5) -> Path:
    """A run folder as catdog train leaves it, for what similar reads: the model, the record."""
    from catdog.data.pipelines import from_directory
    from catdog.deploy.export import save_model
    from catdog.runs.record import split_fingerprint

    splits = from_directory(data, image_size=(SIDE, SIDE), batch_size=8, seed=seed)
    folder.mkdir(parents=True)
    save_model(model, folder / "model.keras")
    record = {"data": str(data), "seed": seed, "model": "transfer", "exclude": None,
              "image_size": SIDE,
              "class_names": splits.class_names, "splits": split_fingerprint(splits)}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(record))
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, model, data) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run", model, data)


def test_one_unit_float32_vector_per_image_the_same_from_files_and_arrays(model, data):
    from catdog import embed
    from catdog.data.files import image_files
    from catdog.data.images import load_images

    paths = image_files([data])
    from_files = embed(model, data, engine="tensorflow")
    from_array = embed(model, load_images(paths, (SIDE, SIDE)), engine="tensorflow")
    assert from_files.vectors.shape == (len(paths), 512) and from_files.vectors.dtype == np.float32
    assert from_files.paths == paths and from_array.paths is None
    np.testing.assert_allclose(np.linalg.norm(from_files.vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(from_files.vectors, from_array.vectors, atol=1e-5)
    one = embed(model, load_images(paths[:1], (SIDE, SIDE))[0], engine="tensorflow")
    assert one.vectors.shape == (1, 512)


def test_tensorflow_and_litert_give_the_same_embeddings(model, data):
    from catdog import embed
    from catdog.data.files import image_files

    paths = image_files([data])[:6]
    tensorflow = embed(model, paths, engine="tensorflow").vectors
    litert = embed(model, paths, engine="litert").vectors
    np.testing.assert_allclose(litert, tensorflow, atol=1e-3)


def test_save_and_load_a_plain_npz(tmp_path):
    from catdog import Embeddings
    from catdog.errors import InputFileNotFoundError, InvalidArgumentError

    vectors = np.eye(3, dtype=np.float32)
    bank = Embeddings(vectors, paths=["a.png", "é/b.png", "c.png"], labels=[0, 1, -1],
                      splits=["train", "test", "train"], class_names=["cats", "dogs"])  # fmt: skip
    path = bank.save(tmp_path / "bank.npz")
    with np.load(path, allow_pickle=False) as plain:  # NumPy alone, no pickle
        assert {"vectors", "paths", "labels", "splits", "class_names"} <= set(plain.files)
        assert plain["paths"].dtype.kind == "U" and plain["paths"][1] == "é/b.png"
        assert plain["labels"].tolist() == [0, 1, -1]
    back = Embeddings.load(path)
    np.testing.assert_array_equal(back.vectors, vectors)
    assert (back.paths, back.splits, back.class_names) == (
        bank.paths,
        bank.splits,
        ["cats", "dogs"],
    )
    assert back.labels.tolist() == [0, 1, -1]
    bare = Embeddings.load(Embeddings(vectors).save(tmp_path / "bare.npz"))
    assert (bare.paths, bare.labels, bare.splits, bare.class_names) == (None, None, None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.npz", "bare.npz"]  # no leftovers
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        Embeddings.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    for foreign in ("text.npz", "other.npz"):
        with pytest.raises(InvalidArgumentError, match="not an embeddings file written by catdog"):
            Embeddings.load(tmp_path / foreign)


def test_nearest_ranks_by_cosine_similarity_and_clips_k():
    from catdog import Embeddings
    from catdog.errors import InvalidArgumentError

    bank = Embeddings(np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32))
    indices, similarities = bank.nearest(np.array([[2.0, 0.0], [0.0, 1.0]]), k=10)
    assert indices.tolist() == [[0, 2, 1], [1, 2, 0]]
    np.testing.assert_allclose(similarities, [[1, 0.6, 0], [1, 0.8, 0]], atol=1e-6)
    assert bank.nearest(bank, k=1)[0].tolist() == [[0], [1], [2]]
    with pytest.raises(InvalidArgumentError, match="same model"):
        bank.nearest(np.ones((1, 3)), k=1)
    with pytest.raises(InvalidArgumentError, match="k must be"):
        bank.nearest(bank, k=0)


def resized_copy(source: str, target: Path) -> Path:
    """``source`` at 75% of its size, as a JPEG of quality 75."""
    from PIL import Image

    with Image.open(source) as image:
        small = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
    small.save(target, quality=75)
    return target


def test_catdog_similar_finds_the_original_of_a_resized_copy(run, data, tmp_path, capsys):
    from catdog import similar
    from catdog.cli import main

    bank = json.loads((run / "config.json").read_text())["splits"]
    originals = [
        str(data / "train" / "cats" / "cat.3.jpg"),
        str(data / "validation/dogs/dog.1.jpg"),
    ]
    copies = [resized_copy(o, tmp_path / f"copy{i}.jpg") for i, o in enumerate(originals)]
    status = main(["similar", *map(str, copies), "--run", str(run), "-k", "3",
                   "--engine", "tensorflow", "--out", str(tmp_path / "figures")])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err
    blocks = out.split("\n\n")
    for copy, original, block in zip(copies, originals, blocks, strict=False):
        lines = block.splitlines()
        assert lines[0] == str(copy) and len(lines) == 4
        rank, similarity, split, label, path = lines[1].split("\t")
        assert (rank, path) == ("1", original) and float(similarity) > 0.9
        assert label == Path(original).parent.name and split in ("train", "validation", "test")
    assert (tmp_path / "figures" / "similar.png").stat().st_size > 0
    found = similar([copies[0]], run, k=2, engine="tensorflow")
    assert len(found) == 1 and [n.path for n in found[0]][0] == originals[0]
    assert found[0][0].label == "cats" and found[0][0].similarity >= found[0][1].similarity
    counts = {s: f["count"] for s, f in bank.items()}
    assert sum(counts.values()) == len(np.load(run / "embeddings.npz")["vectors"])


def test_the_runs_embeddings_are_its_split_cached_and_recomputed_when_the_model_changes(
    model, data, tmp_path, monkeypatch
):
    import catdog.runs.embeddings as module
    from catdog.data.pipelines import from_directory
    from catdog.deploy.export import save_model
    from catdog.models.transfer import build_transfer_model

    run = make_run(tmp_path / "run", model, data, seed=7)
    bank = module.run_embeddings(run, engine="tensorflow")
    splits = from_directory(data, image_size=(SIDE, SIDE), batch_size=8, seed=7)
    for split in ("train", "validation", "test"):
        mine = [p for p, s in zip(bank.paths, bank.splits, strict=True) if s == split]
        assert mine == splits.files[split]
    want = {
        p: y for s in splits.files for p, y in zip(splits.files[s], splits.labels[s], strict=True)
    }
    assert bank.labels.tolist() == [want[p] for p in bank.paths]
    assert bank.class_names == ["cats", "dogs"]
    cache = run / "embeddings.npz"
    stamp = cache.stat().st_mtime_ns

    def no_work(*args, **kwargs):
        raise AssertionError("the embeddings were computed again")

    with monkeypatch.context() as patch:
        patch.setattr(module, "_compute", no_work)
        again = module.run_embeddings(run)
    assert cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.vectors, bank.vectors)
    other = build_transfer_model((SIDE, SIDE, 3), backbone="vgg16", weights=None,
                                 class_names=["cats", "dogs"])  # fmt: skip
    save_model(other, run / "model.keras")
    changed = module.run_embeddings(run, engine="tensorflow")
    assert changed.fingerprint != bank.fingerprint
    assert not np.allclose(changed.vectors, bank.vectors)
    assert Path(cache).stat().st_mtime_ns != stamp


def one_line_error(capsys, *argv) -> str:
    from catdog.cli import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


def test_clear_errors(run, data, tmp_path, capsys, caplog):
    from catdog import embed
    from catdog.errors import InvalidArgumentError
    from catdog.models.cnn import build_baseline_model

    with pytest.raises(InvalidArgumentError, match="no pretrained base.*transfer model"):
        embed(build_baseline_model(input_shape=(SIDE, SIDE, 3)), np.zeros((1, SIDE, SIDE, 3)))
    photo = str(data / "train" / "cats" / "cat.0.jpg")
    line = one_line_error(capsys, "similar", photo, "--run", tmp_path / "nowhere")
    assert line.startswith("catdog: error:") and "does not exist" in line
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    line = one_line_error(capsys, "similar", broken, "--run", run, "--engine", "tensorflow")
    assert str(broken) in line and "not a readable image" in line
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo, folder / "a.jpg")
    shutil.copy(broken, folder / "b.jpg")
    with caplog.at_level(logging.WARNING, logger="catdog"):
        found = embed(run, folder, engine="tensorflow")
    assert found.paths == [os.path.join(folder, "a.jpg")]
    assert "b.jpg (not a readable image" in caplog.text
    line = one_line_error(capsys, "similar", photo, "--run", run, "--out", data / "figures")
    assert "inside the data folder" in line


@pytest.mark.slow
def test_similar_on_a_run_of_catdog_train(data, tmp_path, capsys):
    from catdog.cli import main

    out = tmp_path / "run"
    status = main(["train", "--model", "vgg16", "--data", str(data), "--weights", "none",
                   "--image-size", str(SIDE), "--epochs", "1", "--out", str(out)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()
    original = str(data / "train" / "dogs" / "dog.4.jpg")
    copy = resized_copy(original, tmp_path / "copy.jpg")
    assert main(["similar", str(copy), "--run", str(out), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split("\t")[4] == original and (out / "embeddings.npz").is_file()


def test_farthest_first_takes_each_time_the_photo_most_unlike_the_labelled_and_chosen():
    from catdog.runs.suggest import farthest_first

    rng = np.random.default_rng(3)
    labelled, pool = rng.normal(size=(12, 8)), rng.normal(size=(40, 8))
    pool[0] = rng.normal(size=8) * 50 + 100  # off in a direction of its own
    chosen, distances, far = farthest_first(labelled, pool, 5)
    centre = np.concatenate([labelled, pool]).mean(axis=0)
    unit = lambda x: (x - centre) / np.linalg.norm(x - centre, axis=-1, keepdims=True)  # noqa: E731
    known, rows = unit(labelled), unit(pool)
    within = known @ known.T - 3 * np.eye(len(known))
    limit = (1 - within.max(axis=1)).max()
    np.testing.assert_array_equal(far, 1 - (rows @ known.T).max(axis=1) > limit)
    taken = list(known)
    for i, distance in zip(chosen, distances, strict=True):  # brute force, step by step
        gaps = 1 - (rows @ np.array(taken).T).max(axis=1)
        gaps[far | np.isin(np.arange(len(rows)), chosen[: len(taken) - len(known)])] = -np.inf
        assert i == int(np.argmax(gaps)) and distance == pytest.approx(gaps[i], abs=1e-5)
        taken.append(rows[i])
    assert len(chosen) == 5 and not set(chosen) & set(np.flatnonzero(far))


def test_catdog_suggest_ranks_new_photos_and_review_reads_the_list(run, data, tmp_path, capsys):
    from catdog.cli import main
    from catdog.report.review import read_review_source

    new = tmp_path / "new"
    new.mkdir()
    for i, original in enumerate(sorted((data / "train" / "cats").glob("*.jpg"))[:6]):
        resized_copy(original, new / f"copy{i}.jpg")
    status = main(["suggest", str(new), str(data), "--run", str(run), "-n", "4",
                   "--engine", "tensorflow", "--out", str(tmp_path / "s")])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err
    rows = list(csv.DictReader((tmp_path / "s" / "suggestions.csv").open()))
    ranked = [r for r in rows if r["rank"]]
    assert [r["rank"] for r in ranked] == ["1", "2", "3", "4"][: len(ranked)] and ranked
    assert all(Path(r["path"]).parent == new for r in rows)  # the run's own photos left out
    assert all(r["nearest_class"] in ("cats", "dogs") for r in rows)
    assert (tmp_path / "s" / "suggestions.png").stat().st_size > 0
    assert f"{len(ranked)} photo(s) to label" in out
    _, names, items = read_review_source(tmp_path / "s" / "suggestions.csv")
    assert [i.path for i in items] == [r["path"] for r in rows]
    assert items[0].reason.startswith("#1") and set(names) <= {"cats", "dogs"}
    page = tmp_path / "s" / "review.html"
    assert main(["review", str(tmp_path / "s" / "suggestions.csv"), "--run", str(run),
                 "--out", str(page)]) == 0  # fmt: skip
    found = page.read_text().split('id="payload">')[1].split("</script>")[0]
    payload = json.loads(found)
    assert payload["classes"] == ["cats", "dogs"]  # the run's, whatever the nearest were
    assert all(item["thumbnail"] for item in payload["items"])
