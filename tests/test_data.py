import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import catdog
import catdog.data.files
import catdog.data.images
import catdog.data.pipelines
from catdog.data.files import split_files
from catdog.data.pipelines import from_directory, label_counts, majority_baseline
from catdog.data.synthetic import make_synthetic_dataset
from catdog.deploy.export import export
from catdog.errors import DatasetError, DatasetNotFoundError, InvalidArgumentError

from .helpers import one_line_error, rename_class


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


def test_identical_files_stay_in_one_split(tmp_path, caplog):
    root = tmp_path / "flat"
    source = make_synthetic_dataset(tmp_path / "src", images_per_class=30, image_size=(16, 16))
    for name in ("cats", "dogs"):
        shutil.copytree(source / "train" / name, root / name)
    for i, original in enumerate(sorted((root / "cats").iterdir())[:20]):
        shutil.copy(original, root / "cats" / f"copy_{i}.jpg")  # 20 duplicated images
    crossed = sorted((root / "dogs").iterdir())[0]
    shutil.copy(crossed, root / "cats" / "also_a_dog.jpg")  # one image under two classes
    with caplog.at_level(logging.WARNING, logger="catdog"):
        _, sets = split_files(root, seed=3)
    keys = catdog.data.files.content_keys([str(p) for p in root.rglob("*.jpg")])
    where: dict[str, set[str]] = {}
    for split, by_class in sets.items():
        for paths in by_class.values():
            for path in paths:
                where.setdefault(keys[path], set()).add(split)
    assert all(len(splits) == 1 for splits in where.values())
    assert "also_a_dog.jpg" in caplog.text and crossed.name in caplog.text
    assert sum(len(p) for by_class in sets.values() for p in by_class.values()) == 81


KILLED_CACHE_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import tensorflow as tf
    from catdog.data.pipelines import _cache_target
    files, cache = sys.argv[2:], sys.argv[1]
    target = _cache_target(cache, "validation", files, (16, 16))
    ds = tf.data.Dataset.range(10**6).map(lambda i: tf.zeros((16, 16, 3), tf.uint8))
    iterator = iter(ds.cache(target))
    for _ in range(1000):
        next(iterator)
    os.kill(os.getpid(), signal.SIGKILL)  # while the cache is half written
    """
)


def test_file_cache_follows_changed_images_and_survives_a_killed_writer(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(10):  # BMP: every image of one size has the same number of bytes
            Image.fromarray(rng.integers(0, 200, (16, 16, 3), np.uint8)).save(
                root / name / f"{i}.bmp"
            )
    cache = tmp_path / "cache"

    def validation_images():
        splits = from_directory(root, image_size=(16, 16), cache=cache)
        images = np.concatenate([x.numpy() for x, _ in splits.validation])
        return splits.files["validation"], images

    files, before = validation_images()
    size = os.path.getsize(files[0])
    Image.new("RGB", (16, 16), "white").save(files[0])  # same size, new pixels, new mtime
    os.utime(files[0], ns=(os.stat(files[0]).st_atime_ns, os.stat(files[0]).st_mtime_ns + 10**9))
    assert os.path.getsize(files[0]) == size
    _, after = validation_images()
    assert after[0].min() == 255 and before[0].min() < 255  # the new pixels, not the cached
    np.testing.assert_array_equal(after[1:], before[1:])

    # a real process killed while filling the cache leaves TensorFlow's lockfile behind
    Image.new("RGB", (16, 16), "black").save(files[1])
    os.utime(files[1], ns=(os.stat(files[1]).st_atime_ns, os.stat(files[1]).st_mtime_ns + 10**9))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_CACHE_WRITER, str(cache), *files], capture_output=True
    )
    assert killed.returncode == -9 and list(cache.glob("*.lockfile")), killed.stderr[-2000:]
    _, images = validation_images()
    assert images[1].max() == 0
    assert not list(cache.glob("*.lockfile"))


def test_images_over_the_pixel_limit_are_skipped_or_refused(tmp_path, caplog, monkeypatch):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    big = root / "train" / "cats" / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    monkeypatch.setattr(catdog.data.images, "MAX_IMAGE_PIXELS", 100 * 100)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert str(big) not in splits.files["train"] and len(splits.files["train"]) == 12
    assert "big.png" in caplog.text and "300x200 = 60,000 pixels" in caplog.text
    model = catdog.build_baseline_model(input_shape=(16, 16, 3), filters=(4,), dense_units=8)
    with pytest.raises(InvalidArgumentError, match="too large to read"):
        catdog.predict(model, [big])


def test_non_utf8_file_names_are_skipped_with_a_warning(tmp_path, caplog):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    good = next((root / "train" / "cats").iterdir())
    bad = os.path.join(os.fsencode(root / "train" / "cats"), b"caf\xe9.jpg")
    shutil.copyfile(good, bad)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert len(splits.files["train"]) == 12
    assert "not valid UTF-8" in caplog.text and "caf\\udce9.jpg" in caplog.text


def test_folder_conventions(tmp_path, caplog):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(16, 16))
    hidden = root / "train" / "cats" / ".thumbnails"
    hidden.mkdir()
    shutil.copy(next((root / "train" / "cats").glob("*.jpg")), hidden / "thumb.jpg")
    webp = root / "train" / "dogs" / "extra.webp"
    Image.open(next((root / "train" / "dogs").glob("*.jpg"))).save(webp)
    (root / "unsorted").mkdir()
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(16, 16))
    assert str(webp) in splits.files["train"]  # WebP: as in predict
    assert not any(".thumbnails" in p for p in splits.files["train"])
    assert "unsorted/" in caplog.text


def test_class_names_with_control_characters_are_refused(finished_run, tmp_path, capsys):
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=3, image_size=(16, 16))
    rename_class(root, "cats", "ca\nts")
    with pytest.raises(DatasetError, match=r"ca\\nts'.*rename the folder"):
        from_directory(root, image_size=(16, 16))
    rename_class(root, "ca\nts", "cats")
    with pytest.raises(InvalidArgumentError, match="control character"):
        from_directory(root, image_size=(16, 16), class_names=["cats", "dogs\t"])
    with pytest.raises(InvalidArgumentError, match="control character"):
        catdog.build_baseline_model(input_shape=(16, 16, 3), class_names=["a\u2028b", "c"])
    image = next((root / "train" / "cats").iterdir())
    line = one_line_error(
        capsys, "predict", finished_run.out / "model.keras", image, "--class-names", "x\ny,z"
    )
    assert "control character" in line


def _animated_gif(path: Path, seed: int, frames: int = 50, side: int = 64) -> np.ndarray:
    """Write a GIF of different random frames; return its first frame's pixels."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = [
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).convert("P")
        for _ in range(frames)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    decoded = tf.io.decode_gif(path.read_bytes()).numpy()
    assert decoded.shape == (frames, side, side, 3)
    return decoded[0]


@pytest.fixture
def decoder_takes_one_gif_frame(monkeypatch):
    """``tf.io.decode_image``, failing when the GIF bytes it is given hold several frames
    (eagerly, in tf.data pipelines and in exported signatures alike)."""
    import tensorflow as tf

    decode = tf.io.decode_image

    def checked(contents, *args, **kwargs):
        frames = tf.cond(
            tf.strings.substr(contents, 0, 3) == b"GIF",
            lambda: tf.shape(tf.io.decode_gif(contents))[0],
            lambda: tf.constant(1),
        )
        check = tf.debugging.assert_less_equal(frames, 1, message="every frame decoded")
        with tf.control_dependencies([check]):
            return decode(contents, *args, **kwargs)

    monkeypatch.setattr(tf.io, "decode_image", checked)


def test_an_animated_gif_is_read_from_its_first_frame_only(
    tmp_path, caplog, decoder_takes_one_gif_frame
):
    import tensorflow as tf

    gif = tmp_path / "animated.gif"
    first = _animated_gif(gif, seed=0)
    data = gif.read_bytes()
    assert tf.io.decode_gif(catdog.data.images.first_gif_frame(data)).shape == (1, 64, 64, 3)
    pixels = catdog.decode_image(tf.constant(data), (64, 64)).numpy()
    assert pixels.shape == (64, 64, 3) and np.array_equal(pixels, first)
    png = tmp_path / "first.png"  # not a GIF: unchanged
    Image.fromarray(first).save(png)
    assert catdog.data.images.first_gif_frame(png.read_bytes()).numpy() == png.read_bytes()
    # predict
    model = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
    expected = catdog.predict(model, first[None].astype(np.float32))[0].probabilities
    assert catdog.predict(model, [gif])[0].probabilities == pytest.approx(expected, rel=1e-5)
    # datasets
    root = make_synthetic_dataset(tmp_path / "data", images_per_class=6, image_size=(64, 64))
    gifs = [root / split / "cats" / f"animated_{split}.gif" for split in ("train", "validation")]
    for seed, path in enumerate(gifs, start=1):
        _animated_gif(path, seed=seed, frames=20)
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_directory(root, image_size=(64, 64), batch_size=4)
    kept = [p for files in splits.files.values() for p in files]
    assert all(str(p) in kept for p in gifs) and "animated" not in caplog.text
    # the SavedModel's bytes signature
    served = tf.saved_model.load(str(export(model, tmp_path / "served", format="tf_saved_model")))
    out = served.signatures["serving_default"](image_bytes=tf.constant([data, png.read_bytes()]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], list(expected.values()), atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy()[1], list(expected.values()), atol=1e-5)
