"""Labels files of multi-label data (``catdog.data.label_table``): three forms, one table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from catdog.data.label_table import LabelTable, describe_label_table, read_label_table
from catdog.errors import InputFileNotFoundError, InvalidArgumentError

SHOWN = {"a.png": ("cats", "dogs"), "b.png": ("dogs",), "c.png": (), "sub/d.png": ("cats",)}


@pytest.fixture
def photos(tmp_path):
    for name in SHOWN:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name)
    return tmp_path


def _write(folder, name: str, text: str):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _as_list_csv(folder):
    lines = ["path,labels"] + [f"{p},{';'.join(v)}" for p, v in SHOWN.items()]
    return _write(folder, "labels.csv", "\n".join(lines) + "\n")


def _as_columns_csv(folder):
    lines = ["path,cats,dogs"] + [
        f"{p},{int('cats' in v)},{int('dogs' in v)}" for p, v in SHOWN.items()
    ]
    return _write(folder, "columns.csv", "\n".join(lines) + "\n")


def _as_jsonl(folder):
    lines = [json.dumps({"path": p, "labels": list(v)}) for p, v in SHOWN.items()]
    return _write(folder, "labels.jsonl", "\n".join(lines) + "\n")


def test_the_three_forms_give_one_table_with_unlabelled_photos_kept(photos):
    tables = [read(photos) for read in (_as_list_csv, _as_columns_csv, _as_jsonl)]
    tables = [read_label_table(path) for path in tables]
    first = tables[0]
    assert first.class_names == ["cats", "dogs"]
    assert list(first.rows) == [str(photos / p) for p in SHOWN]  # absolute, in file order
    assert list(first.rows.values()) == list(SHOWN.values())  # c.png shows neither: kept
    for other in tables[1:]:
        assert other.rows == first.rows and other.class_names == first.class_names
    expected = [[1, 1], [0, 1], [0, 0], [1, 0]]
    np.testing.assert_array_equal(first.multi_hot(), np.array(expected, np.float32))
    described = [describe_label_table(t) for t in tables]
    assert len({d["labels_sha256"] for d in described}) == 1  # the content, not the form
    assert described[0]["labels"] == str(photos / "labels.csv")


def test_given_class_names_fix_the_order_and_may_include_a_class_no_photo_shows(photos):
    table = read_label_table(_as_list_csv(photos), class_names=["dogs", "cats", "birds"])
    assert table.rows[str(photos / "a.png")] == ("dogs", "cats")
    assert table.multi_hot()[:, 2].sum() == 0
    assert table.multi_hot([str(photos / "b.png")]).tolist() == [[1.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("path,labels\n", "lists no photo"),
        ("", "lists no photo"),
        ("path,labels\na.png,cats;dgos\n", r"'dgos' is not one of the classes cats.*'dogs'"),
        ("path,cats,dogs\na.png,1,2\n", r"line 2: column 'dogs' must be 0 or 1, got '2'"),
        ("path,labels\na.png,cats\na.png,dogs\n", "line 3 lists .*a.png' a second time"),
        ("path,labels\n,cats\n", "line 2 has no path"),
        ("path,labels\nmissing.png,cats\nb.png,dogs\n", r"1 photo\(s\) .* do not exist"),
        ("path,labels\na.png,\nb.png,\n", "No photo .* has a label"),
    ],
)
def test_a_bad_labels_file_is_one_error_naming_the_row(photos, text, error):
    path = _write(photos, "labels.csv", text)
    with pytest.raises(InvalidArgumentError, match=error):
        read_label_table(path, class_names=["cats", "dogs"] if "dgos" in text else None)


def test_bad_json_lines_and_a_missing_file_are_named(photos):
    with pytest.raises(InvalidArgumentError, match=r"line 2 is not a JSON object"):
        read_label_table(_write(photos, "l.jsonl", '{"path": "a.png", "labels": []}\n[1]\n'))
    with pytest.raises(InvalidArgumentError, match="labels must be a list of class names"):
        read_label_table(_write(photos, "m.jsonl", '{"path": "a.png", "labels": 3}\n'))
    with pytest.raises(InputFileNotFoundError, match="does not exist"):
        read_label_table(photos / "nowhere.csv")


def test_a_table_made_in_code_gives_its_multi_hot_rows():
    table = LabelTable(["a", "b", "c"], {"/x": ("c",), "/y": ("a", "b")})
    assert table.multi_hot().dtype == np.float32
    assert table.multi_hot(["/y", "/x"]).tolist() == [[1, 1, 0], [0, 0, 1]]
