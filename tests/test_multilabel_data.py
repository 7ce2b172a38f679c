"""Multi-label data (``catdog.data.multilabel``): a labels table becomes a leak-free split and
datasets of multi-hot labels."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from catdog.data.label_table import read_label_table
from catdog.data.multilabel import (
    from_label_table,
    label_set_key,
    split_label_table,
    splits_from_lists,
)
from catdog.data.pipelines import Splits, label_counts, majority_baseline
from catdog.data.synthetic import make_multilabel_dataset
from catdog.errors import InvalidArgumentError

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    """40 photos of 16x16: ten each of cats, dogs, both and none."""
    return make_multilabel_dataset(tmp_path_factory.mktemp("ml"), images=40, image_size=(16, 16))


def _copy(labels_file, tmp_path):
    """A copy of the generated data that a test may change."""
    shutil.copytree(labels_file.parent, tmp_path / "data")
    return tmp_path / "data" / "labels.csv"


def test_the_generator_writes_every_label_set(labels_file):
    table = read_label_table(labels_file)
    assert table.class_names == ["cats", "dogs"]
    sets = [table.rows[p] for p in table.rows]
    assert {s: sets.count(s) for s in set(sets)} == {
        ("cats",): 10,
        ("dogs",): 10,
        ("cats", "dogs"): 10,
        (): 10,
    }
    assert label_set_key(("cats", "dogs")) == "cats+dogs" and label_set_key(()) == ""


def test_the_split_is_reproducible_disjoint_and_stratified_by_label_set(labels_file):
    table = read_label_table(labels_file)
    split = split_label_table(table, seed=3)
    assert split == split_label_table(table, seed=3)
    assert split != split_label_table(table, seed=4)
    every = [p for s in SPLITS for p in split[s]]
    assert sorted(every) == sorted(table.rows) and len(set(every)) == len(every)
    for s, expected in zip(SPLITS, (6, 2, 2), strict=True):  # of each set's 10 photos
        sets = [table.rows[p] for p in split[s]]
        assert all(sets.count(key) == expected for key in set(table.rows.values())), s
        assert split[s] == [p for p in table.rows if p in split[s]]  # in the table's order


def test_byte_identical_copies_stay_in_one_split(labels_file, tmp_path, caplog):
    path = _copy(labels_file, tmp_path)
    lines = path.read_text().splitlines()
    for i in range(12):  # twelve copies with the same labels, one with other labels
        shutil.copy(path.parent / "photos" / f"photo.{i}.jpg", path.parent / f"copy.{i}.jpg")
        labels = lines[i + 1].split(",")[1] if i else "dogs"
        lines.append(f"copy.{i}.jpg,{labels}")
    path.write_text("\n".join(lines) + "\n")
    table = read_label_table(path)
    for seed in range(4):
        with caplog.at_level(logging.WARNING, logger="catdog"):
            split = split_label_table(table, seed=seed)
        where = {p: s for s in SPLITS for p in split[s]}
        for i in range(12):
            original = str(path.parent / "photos" / f"photo.{i}.jpg")
            assert where[original] == where[str(path.parent / f"copy.{i}.jpg")], (seed, i)
    assert "with different labels" in caplog.text and "copy.0.jpg" in caplog.text


def test_exclude_leaves_out_the_listed_photos_and_every_other_keeps_its_split(
    labels_file, tmp_path
):
    table = read_label_table(labels_file)
    split = split_label_table(table, seed=1)
    chosen = [split["train"][0], split["validation"][0], split["test"][-1]]
    listed = tmp_path / "exclude.txt"
    root = labels_file.parent
    listed.write_text("# left out\n" + "\n".join(str(p).replace(f"{root}/", "") for p in chosen))
    for exclude in (listed, chosen):  # a file of paths relative to the labels' folder, a list
        kept = split_label_table(table, seed=1, exclude=exclude)
        assert kept == {s: [p for p in split[s] if p not in chosen] for s in SPLITS}


def test_every_class_keeps_a_training_photo_that_shows_it(labels_file):
    table = read_label_table(labels_file)
    split = split_label_table(table, seed=1)
    dogs = [p for p in split["train"] if "dogs" in table.rows[p]]
    with pytest.raises(InvalidArgumentError, match=r"Class 'dogs' has no training photo: the ex"):
        split_label_table(table, seed=1, exclude=dogs)
    split_label_table(table, seed=1, exclude=dogs[1:])  # one is enough
    wider = read_label_table(labels_file, class_names=["cats", "dogs", "birds"])
    with pytest.raises(InvalidArgumentError, match=r"Class 'birds' .* no photo of .* shows it"):
        split_label_table(wider, seed=1)


def test_batches_hold_float32_images_and_the_tables_multi_hot(labels_file, tmp_path):
    table = read_label_table(labels_file)
    splits = from_label_table(table, image_size=(16, 16), batch_size=4, seed=1, cache=tmp_path)
    assert splits.multi_label and splits.class_names == ["cats", "dogs"]
    assert splits.files == split_label_table(table, seed=1)
    for split in SPLITS:
        batches = list(getattr(splits, split))
        images, ys = zip(*batches, strict=True)
        assert all(x.dtype.name == "float32" and x.shape[1:] == (16, 16, 3) for x in images)
        assert all(y.dtype.name == "float32" and y.shape[1:] == (2,) for y in ys)
        assert 0 <= float(min(np.min(x) for x in images)) and max(np.max(x) for x in images) <= 255
        found = np.concatenate([np.asarray(y) for y in ys])
        expected = table.multi_hot(splits.files[split])
        if split == "train":  # shuffled
            found, expected = np.sort(found, axis=0), np.sort(expected, axis=0)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_array_equal(splits.multi_hot(split), table.multi_hot(splits.files[split]))
    for split in SPLITS:  # tuples of class indices, in the files' order
        index = splits.class_names.index
        shown = [tuple(index(n) for n in table.rows[p]) for p in splits.files[split]]
        assert splits.labels[split] == shown and () in shown
    assert label_counts(splits) == {"cats": 12, "dogs": 12, "(no label)": 6}
    assert majority_baseline(splits) == 0.25  # exact match of one of four equal sets
    again = from_label_table(labels_file, image_size=(16, 16), batch_size=4, seed=1, cache=tmp_path)
    assert again.files == splits.files  # the same split, read from the file


def test_splits_from_lists_keeps_a_chosen_split_and_refuses_a_leaky_one(labels_file):
    table = read_label_table(labels_file)
    paths = list(table.rows)
    chosen = {"train": paths[:30], "validation": paths[30:35], "test": paths[35:]}
    splits = splits_from_lists(table, chosen, image_size=(16, 16), batch_size=4, seed=1)
    assert splits.multi_label and splits.files == chosen
    np.testing.assert_array_equal(splits.multi_hot("test"), table.multi_hot(chosen["test"]))
    leaky = {**chosen, "test": [*chosen["test"], paths[0]]}
    with pytest.raises(InvalidArgumentError, match="in both 'train' and 'test'"):
        splits_from_lists(table, leaky, image_size=(16, 16))
    with pytest.raises(InvalidArgumentError, match="exactly the splits"):
        splits_from_lists(table, {"train": paths}, image_size=(16, 16))
    with pytest.raises(InvalidArgumentError, match="not a photo of the table"):
        splits_from_lists(table, {**chosen, "test": ["elsewhere.jpg"]}, image_size=(16, 16))


def test_the_file_cache_answers_the_labels_of_this_call(labels_file, tmp_path):
    """The same photos in the same splits with the classes in another order: the cached
    pixels are reused, the labels are not."""
    first = from_label_table(labels_file, image_size=(16, 16), batch_size=64, cache=tmp_path)
    swapped = from_label_table(
        labels_file,
        image_size=(16, 16),
        batch_size=64,
        cache=tmp_path,
        class_names=["dogs", "cats"],
    )
    assert swapped.files == first.files and swapped.class_names == ["dogs", "cats"]
    (x, y), (x_before, y_before) = next(iter(swapped.test)), next(iter(first.test))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, np.asarray(y_before)[:, ::-1])


def test_an_unreadable_photo_is_skipped_with_its_reason(labels_file, tmp_path, caplog):
    path = _copy(labels_file, tmp_path)
    broken = path.parent / "photos" / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    path.write_text(path.read_text() + "photos/broken.jpg,cats;dogs\n")
    with caplog.at_level(logging.WARNING, logger="catdog"):
        splits = from_label_table(path, image_size=(16, 16), batch_size=8, seed=1)
    assert splits.skipped == [(str(broken), "not a decodable image")]
    assert str(broken) in caplog.text and "not a decodable image" in caplog.text
    assert all(str(broken) not in files for files in splits.files.values())
    for split in SPLITS:  # the labels still line up with the files left
        total = sum(int(y.shape[0]) for _, y in getattr(splits, split))
        assert total == len(splits.files[split]) == len(splits.labels[split])


def test_single_label_statistics_refuse_multi_label_input_they_cannot_read():
    import tensorflow as tf

    multi_hot = tf.data.Dataset.from_tensor_slices(
        (np.zeros((2, 4, 4, 3), np.float32), np.eye(2, dtype=np.float32))
    ).batch(2)
    with pytest.raises(InvalidArgumentError, match="multi-hot labels: pass the Splits"):
        label_counts(multi_hot)
    with pytest.raises(InvalidArgumentError, match="most common label set"):
        majority_baseline({"cats": 3, "dogs": 1, "(no label)": 2})
    single = Splits(None, None, None, ["cats", "dogs"], {"train": ["a"]}, {"train": [1]}, (4, 4), 1)
    assert single.multi_hot("train").tolist() == [[0.0, 1.0]]  # a one-hot row
    assert label_counts(single) == {"cats": 0, "dogs": 1} and majority_baseline(single) == 1.0
