import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import catdog
from catdog.data.files import split_files
from catdog.data.pipelines import from_directory, label_counts, majority_baseline
from catdog.data.synthetic import make_synthetic_dataset
from catdog.errors import DatasetError, DatasetNotFoundError


def _labels(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


def _images(dataset):
    return np.concatenate([images.numpy() for images, _ in dataset])


def test_splits_structure(synthetic_splits):
    s = synthetic_splits
    assert s.class_names == ["cats", "dogs"]
    assert [len(s.files[k]) for k in ("train", "validation", "test")] == [80, 32, 8]
    images, labels = next(iter(s.train))
    assert images.shape == (16, 64, 64, 3) and images.dtype.name == "float32"
    assert labels.dtype.name == "int32"
    assert 0 <= images.numpy().min() and images.numpy().max() <= 255
    assert images.numpy().max() > 1  # 0..255 range, not 0..1
    assert s.train.cardinality().numpy() == 5


def test_split_is_leak_free_and_files_match_labels(synthetic_splits):
    s = synthetic_splits
    sets = {k: set(v) for k, v in s.files.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["validation"] & sets["test"]
    assert not sets["train"] & sets["test"]
    for split in ("train", "validation", "test"):
        for path, label in zip(s.files[split], s.labels[split], strict=True):
            assert Path(path).parent.name == s.class_names[label]
    # test images come out of validation/, train images out of train/
    assert all("/validation/" in p for p in s.files["test"])
    assert all("/train/" in p for p in s.files["train"])


def test_evaluation_order_is_stable_and_train_reshuffles(synthetic_splits):
    s = synthetic_splits
    np.testing.assert_array_equal(_labels(s.test), s.labels["test"])
    np.testing.assert_array_equal(_images(s.validation), _images(s.validation))
    first, second = _labels(s.train), _labels(s.train)
    assert sorted(first) == sorted(second) == sorted(s.labels["train"])
    assert not np.array_equal(first, second), "training data should be reshuffled every epoch"


def test_split_is_reproducible_across_runs_and_seeds(synthetic_root):
    a = split_files(synthetic_root, seed=7)
    b = split_files(synthetic_root, seed=7)
    c = split_files(synthetic_root, seed=8)
    assert a == b
    assert a[1]["test"] != c[1]["test"]


def test_decoded_pixels_match_the_file(synthetic_root):
    splits = from_directory(synthetic_root, image_size=(64, 64), batch_size=4)
    first = splits.files["validation"][0]
    expected = np.asarray(Image.open(first).convert("RGB"), dtype=np.float32)
    got = next(iter(splits.validation))[0][0].numpy()
    diff = np.abs(got - expected)  # JPEG decoders differ by a few levels at most
    assert diff.max() <= 4 and diff.mean() < 2


def test_flat_layout_three_way_split(tmp_path):
    root = make_synthetic_dataset(tmp_path / "d", images_per_class=30, image_size=(32, 32))
    flat = root / "train"  # cats/ and dogs/ directly inside
    splits = from_directory(flat, image_size=(32, 32), validation_fraction=0.2, test_fraction=0.1)
    sizes = {k: len(v) for k, v in splits.files.items()}
    assert sizes == {"train": 42, "validation": 12, "test": 6}
    assert label_counts(splits, "test") == {"cats": 3, "dogs": 3}
    everything = [p for v in splits.files.values() for p in v]
    assert len(everything) == len(set(everything)) == 60


def test_explicit_test_folder_is_used(tmp_path):
    root = make_synthetic_dataset(tmp_path / "d", images_per_class=6, image_size=(32, 32))
    for name in ("cats", "dogs"):
        (root / "test" / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), "red").save(root / "test" / name / "x.png")
    splits = from_directory(root, image_size=(32, 32))
    assert len(splits.files["test"]) == 2 and len(splits.files["validation"]) == 6


def test_label_counts_and_majority_baseline(synthetic_splits):
    assert label_counts(synthetic_splits) == {"cats": 40, "dogs": 40}
    assert label_counts(synthetic_splits.train) == {0: 40, 1: 40}
    assert majority_baseline(synthetic_splits) == 0.5
    assert majority_baseline({"a": 3, "b": 1}) == 0.75


def _write_messy_folder(root: Path) -> dict[str, str]:
    """Images in every odd format, and junk; returns {file name: what it is}."""
    cats, dogs = root / "train" / "cats", root / "train" / "dogs"
    for folder in (cats, dogs, root / "validation" / "cats", root / "validation" / "dogs"):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def pixels(h, w):
        return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    Image.fromarray(pixels(50, 70)).save(cats / "rgb.jpg")
    Image.fromarray(pixels(40, 40)).convert("L").save(cats / "gray.png")
    Image.fromarray(pixels(30, 60)).convert("RGBA").save(cats / "rgba.png")
    Image.fromarray(pixels(64, 64)).convert("CMYK").save(cats / "cmyk.jpg")
    Image.fromarray(pixels(20, 20)).convert("P").save(dogs / "anim.gif")
    Image.fromarray(pixels(33, 31)).save(dogs / "bitmap.bmp")
    Image.fromarray(pixels(45, 45)).save(dogs / "upper.JPG")
    good = dogs / "rgb.jpg"
    Image.fromarray(pixels(80, 80)).save(good)
    data = good.read_bytes()
    (dogs / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (cats / "notes.jpg").write_text("this is not an image")
    (cats / "readme.txt").write_text("ignored")
    (cats / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (dogs / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (cats / "._rgb.jpg").write_bytes(b"\0\5\26\7")
    for name in ("cats", "dogs"):
        Image.fromarray(pixels(32, 32)).save(root / "validation" / name / "v1.png")
        Image.fromarray(pixels(32, 32)).save(root / "validation" / name / "v2.png")
    return {}


def test_messy_folder(tmp_path, caplog):
    _write_messy_folder(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(tmp_path, image_size=(24, 24), batch_size=4, test_fraction=0.5)
    names = sorted(Path(p).name for p in splits.files["train"])
    assert names == [
        "anim.gif",
        "bitmap.bmp",
        "cmyk.jpg",
        "gray.png",
        "rgb.jpg",
        "rgb.jpg",
        "rgba.png",
        "upper.JPG",
    ]
    skipped = sorted(Path(p).name for p, _ in splits.skipped)
    assert skipped == ["notes.jpg", "truncated.jpg"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "notes.jpg" in warnings[0].getMessage() and "truncated.jpg" in warnings[0].getMessage()
    images = _images(splits.train)
    assert images.shape == (8, 24, 24, 3)
    assert np.all(np.isfinite(images))
    # the user's folder is untouched
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_gray_image_becomes_three_equal_channels(tmp_path):
    _write_messy_folder(tmp_path)
    splits = from_directory(tmp_path, image_size=(24, 24), batch_size=64)
    index = [Path(p).name for p in splits.files["train"]]
    # train is shuffled; find the gray image through a non-shuffled pipeline over the same files
    from catdog.data.pipelines import build_splits

    only = {
        "train": {"cats": [splits.files["train"][index.index("gray.png")]]},
        "validation": {},
        "test": {},
    }
    gray = build_splits(["cats", "dogs"], only, image_size=(24, 24))
    image = next(iter(gray.train))[0][0].numpy()
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 1], image[..., 2])


def test_file_cache(tmp_path, synthetic_root):
    cache = tmp_path / "cache"
    a = from_directory(synthetic_root, image_size=(32, 32), cache=cache)
    np.testing.assert_array_equal(_images(a.validation), _images(a.validation))
    assert any(cache.iterdir())
    b = from_directory(synthetic_root, image_size=(32, 32), cache=cache)
    np.testing.assert_array_equal(_images(a.test), _images(b.test))


@pytest.mark.parametrize(
    "layout,error,message",
    [
        ("missing", DatasetNotFoundError, "does not exist"),
        ("single_class", DatasetError, "at least two"),
        ("empty_class", DatasetError, "contains no images"),
        ("mismatch", DatasetError, "different class folders"),
        ("no_validation", DatasetError, "no validation/"),
    ],
)
def test_bad_folders(tmp_path, layout, error, message):
    root = make_synthetic_dataset(tmp_path / "d", images_per_class=2, image_size=(16, 16))
    if layout == "missing":
        root = tmp_path / "nope"
    elif layout == "single_class":
        root = root / "train" / "cats"
        (root / "sub").mkdir()
        Image.new("RGB", (8, 8)).save(root / "sub" / "a.png")
    elif layout == "empty_class":
        (root / "train" / "birds").mkdir()
        (root / "train" / "birds" / "notes.txt").write_text("x")
    elif layout == "mismatch":
        os.rename(root / "validation" / "dogs", root / "validation" / "puppies")
    elif layout == "no_validation":
        import shutil

        shutil.rmtree(root / "validation")
    with pytest.raises(error, match=message):
        from_directory(root, image_size=(16, 16))


@pytest.mark.parametrize(
    "kwargs",
    [{"test_fraction": 1.0}, {"image_size": (0, 10)}, {"batch_size": 0}, {"image_size": 64}],
)
def test_bad_arguments(synthetic_root, kwargs):
    with pytest.raises(ValueError):
        from_directory(synthetic_root, **kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_small_cnn_learns_the_synthetic_data(tmp_path, seed):
    root = make_synthetic_dataset(
        tmp_path / "d", images_per_class=60, image_size=(48, 48), seed=seed
    )
    splits = from_directory(root, image_size=(48, 48), batch_size=16, seed=seed, test_fraction=0.5)
    model = catdog.compile_model(
        catdog.build_preprocessed_model(input_shape=(48, 48, 3), rotation=None)
    )
    model.fit(splits.train, validation_data=splits.validation, epochs=6, verbose=0)
    _, accuracy = model.evaluate(splits.test, verbose=0)
    assert accuracy >= majority_baseline(splits, "test") + 0.25
