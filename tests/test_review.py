"""The review page (catdog.report.review) and the relabel map it saves (catdog.data.relabel)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.data.relabel import describe_relabel, read_relabel_map
from catdog.errors import InvalidArgumentError
from catdog.report.review import (
    ReviewItem,
    audit_items,
    prediction_items,
    read_review_source,
    write_review_page,
)

HOSTILE = "</script><img src=x onerror=alert(1)> & $5\nnext line"


def _image(path: Path, value: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 30, 3), value, np.uint8)).save(path)


def _payload(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="payload">(.*?)</script>', page, re.S)
    return json.loads(found[1])


def _audit(data: Path) -> dict:
    image = lambda path, label: {"path": path, "split": "train", "label": label, "score": 0.1}  # noqa: E731
    return {
        "data": str(data),
        "class_names": ["cats", "dogs"],
        "label_issues": [image("train/cats/a.png", "cats") | {"predicted": "dogs"}],
        "outliers": [image("train/dogs/b.png", "dogs"), image("train/cats/a.png", "cats")],
        "near_duplicates": [
            {
                "images": [image("train/cats/c.png", "cats"), image("train/cats/d.png", "cats")],
                "leak": False,
            }
        ],  # fmt: skip
        "unfamiliar": [],
        "exclude": ["train/cats/a.png", "train/cats/d.png", "train/dogs/b.png"],
    }


def test_an_audits_images_are_on_the_page_once_most_severe_kind_first(tmp_path):
    items = audit_items(_audit(tmp_path))
    assert [i.path for i in items] == ["train/cats/a.png", "train/dogs/b.png", "train/cats/d.png"]
    assert items[0] == ReviewItem("train/cats/a.png", "cats", "label issue", "dogs")
    assert items[1].reason.startswith("outlier") and items[2].reason.startswith("near duplicate")


def test_a_predictions_file_gives_its_unknown_and_unsure_rows_least_sure_first():
    rows = [
        {"path": "a.jpg", "class": "cats", "probability": "0.99"},
        {"path": "b.jpg", "class": "dogs", "probability": "0.62"},
        {"path": "c.jpg", "class": "unknown", "probability": "0.8"},
        {"path": "d.jpg", "class": "", "probability": "", "error": "not an image"},
    ]
    items = prediction_items(rows)
    assert [(i.path, i.suggested) for i in items] == [("b.jpg", "dogs"), ("c.jpg", None)]
    assert items[1].reason.startswith("unknown")


def test_every_name_on_the_page_is_text_and_the_page_is_whole(tmp_path):
    data = tmp_path / "data"
    _image(data / "train" / HOSTILE.replace("/", "_") / "x.png")
    name = str(Path("train") / HOSTILE.replace("/", "_") / "x.png")
    items = [ReviewItem(name, HOSTILE, HOSTILE, HOSTILE), ReviewItem("gone.png", "cats", "outlier")]
    page = write_review_page(items, [HOSTILE, "dogs"], data, tmp_path / "review.html", HOSTILE)
    text = page.read_text()
    assert text.count("</script>") == 2  # the page's own two script blocks, no third
    assert HOSTILE not in text  # in the title escaped, in the JSON with "<" as \u003c
    payload = _payload(text)
    assert payload["classes"] == [HOSTILE, "dogs"] and payload["title"] == HOSTILE
    assert payload["items"][0]["label"] == HOSTILE
    assert payload["items"][0]["thumbnail"].startswith("data:image/jpeg;base64,")
    assert payload["items"][1]["thumbnail"] is None  # a file that is gone: no picture
    assert "innerHTML" not in text  # names reach the page through textContent only
    assert not list(tmp_path.glob(".review*"))  # written in one step


def test_review_sources_and_their_errors(tmp_path):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.json").write_text(json.dumps(_audit(tmp_path)))
    data, names, items = read_review_source(tmp_path / "audit")
    assert (data, names, len(items)) == (str(tmp_path), ["cats", "dogs"], 3)
    from catdog.deploy.predict import Prediction
    from catdog.deploy.prediction_files import write_predictions

    nan = float("nan")
    written = [  # as catdog predict --output writes them
        Prediction("sure.jpg", "cats", 0.97, {"cats": 0.97, "dogs": 0.03}, 0.1, False),
        Prediction("odd.jpg", "unknown", 0.95, {"cats": 0.95, "dogs": 0.05}, 0.9, True),
        Prediction("unsure.jpg", "dogs", 0.55, {"cats": 0.45, "dogs": 0.55}, 0.2, False),
        Prediction("bad.jpg", "", nan, {"cats": nan, "dogs": nan}, nan, False, "not an image"),
    ]
    write_predictions(written, tmp_path / "p.csv")
    _image(tmp_path / "unsure.jpg")  # beside the CSV: found there
    data, names, items = read_review_source(tmp_path / "p.csv")
    assert names == ["cats", "dogs"] and data is None  # paths absolute, no data folder
    assert [(i.path, i.suggested) for i in items] == [
        (str(tmp_path / "unsure.jpg"), "dogs"),
        (os.path.abspath("odd.jpg"), None),
    ]
    for text, message in [
        ("{bad", "not valid JSON"),
        ("a,b\n1,2\n", "neither a catdog predict"),
        ("path,class,probability\nx.jpg,cats,high\n", "not a number"),
    ]:
        bad = tmp_path / ("bad.json" if text.startswith("{") else "bad.csv")
        bad.write_text(text)
        with pytest.raises(InvalidArgumentError, match=message):
            read_review_source(bad)
    with pytest.raises(FileNotFoundError, match="audit folder"):
        read_review_source(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InvalidArgumentError, match="neither an audit.json nor"):
        read_review_source(tmp_path / "x.txt")


def test_relabel_maps_and_their_errors(tmp_path):
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"exclude": ["a"], "relabel": {"train/cats/3.png": "dogs"}}))
    assert read_relabel_map(decisions) == {"train/cats/3.png": "dogs"}
    described = describe_relabel(decisions)
    assert described["relabel"] == str(decisions) and len(described["relabel_sha256"]) == 64
    assert (
        describe_relabel({"train/cats/3.png": "dogs"})["relabel_sha256"]
        == (described["relabel_sha256"])
    )  # the same map, however given
    (tmp_path / "list.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(InvalidArgumentError, match="no map of image paths"):
        read_relabel_map(tmp_path / "list.json")
    with pytest.raises(FileNotFoundError, match="decisions.json"):
        read_relabel_map(tmp_path / "missing.json")


def test_relabelled_images_change_class_in_their_split_and_nothing_moves(synthetic_root, tmp_path):
    from catdog import from_directory

    before = from_directory(synthetic_root, image_size=(32, 32), decode=())
    train = zip(before.files["train"], before.labels["train"], strict=True)
    moved = [path for path, label in train if label == 0]
    relabel = {os.path.relpath(moved[0], synthetic_root): "dogs", moved[1]: "dogs"}
    after = from_directory(synthetic_root, image_size=(32, 32), decode=(), relabel=relabel)
    label = dict(zip(after.files["train"], after.labels["train"], strict=True))
    assert label[moved[0]] == label[moved[1]] == 1 and label[moved[2]] == 0
    assert sorted(after.files["train"]) == sorted(before.files["train"])  # same split
    assert os.path.exists(moved[0])  # nothing on disk moved
    with pytest.raises(InvalidArgumentError, match="classes are cats, dogs"):
        from_directory(synthetic_root, decode=(), relabel={moved[0]: "horses"})


def test_catdog_review_writes_a_page_and_refuses_to_overwrite_or_write_into_the_data(
    tmp_path, capsys, monkeypatch
):
    from catdog.cli import main

    data = tmp_path / "data"
    for path in ("train/cats/a.png", "train/dogs/b.png", "train/cats/c.png", "train/cats/d.png"):
        _image(data / path)
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.json").write_text(json.dumps(_audit(data)))
    out = tmp_path / "review.html"
    assert main(["review", str(tmp_path / "audit"), "--out", str(out)]) == 0
    assert "3 image(s) to review" in capsys.readouterr().out
    assert all(i["thumbnail"] for i in _payload(out.read_text())["items"])
    assert main(["review", str(tmp_path / "audit"), "--out", str(out)]) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert main(["review", str(tmp_path / "audit"), "--out", str(data / "r.html")]) != 0
    assert "inside the data folder" in capsys.readouterr().err
    work = tmp_path / "work"
    work.mkdir()
    (work / "p.csv").write_text(f"path,class,probability\n{data}/train/cats/a.png,cats,0.5\n")
    monkeypatch.chdir(work)  # the CSV in the working folder, the page beside it: fine
    assert main(["review", "p.csv"]) == 0, capsys.readouterr().err
    assert _payload((work / "review.html").read_text())["items"][0]["thumbnail"]
    shutil.rmtree(data)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (CI installs it)")
    pytest.importorskip("playwright", reason="needs Playwright: pip install playwright")
    return path


@pytest.mark.slow
def test_decisions_made_with_the_keyboard_in_a_real_browser_train_a_run(tmp_path, capsys):
    """Open the page in Chromium, decide with the keyboard, save, train with the file."""
    from playwright.sync_api import sync_playwright

    from catdog.cli import main
    from catdog.data.files import split_files
    from catdog.data.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path / "data", images_per_class=10, image_size=(16, 16))
    _, split = split_files(root, seed=1337)
    cats = [os.path.relpath(p, root) for p in sorted(split["train"]["cats"])]
    image = lambda path: {"path": path, "split": "train", "label": "cats", "score": 0.1}  # noqa: E731
    audit = {"data": str(root), "class_names": ["cats", "dogs"], "exclude": [],
             "label_issues": [image(p) | {"predicted": "dogs"} for p in cats[:3]]}  # fmt: skip
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "audit.json").write_text(json.dumps(audit))
    page = tmp_path / "review.html"
    assert main(["review", str(tmp_path / "audit"), "--out", str(page)]) == 0

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        tab = browser.new_page(accept_downloads=True)
        tab.goto(page.as_uri())
        assert tab.locator(".item").count() == 3
        assert tab.locator(".item img").count() == 3  # thumbnails inside the page
        tab.keyboard.press("x")  # the first: exclude
        tab.keyboard.press("2")  # the second: relabel as class 2, dogs
        tab.keyboard.press("Enter")  # the third: keep
        assert tab.locator("#progress").text_content() == "3 of 3 decided"
        with tab.expect_download() as download:
            tab.keyboard.press("s")
        download.value.save_as(tmp_path / "decisions.json")
        browser.close()

    decisions = json.loads((tmp_path / "decisions.json").read_text())
    assert decisions["exclude"] == [cats[0]] and decisions["relabel"] == {cats[1]: "dogs"}
    assert decisions["keep"] == [cats[2]] and decisions["data"] == str(root)

    dec = str(tmp_path / "decisions.json")
    args = ["train", "--data", str(root), "--model", "baseline", "--epochs", "1",
            "--image-size", "16", "--batch-size", "8", "--no-calibrate",
            "--exclude", dec, "--relabel", dec, "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["excluded"] == [cats[0]] and record["relabelled"] == {cats[1]: "dogs"}
    assert len(record["relabel_sha256"]) == 64
    from catdog import from_directory

    splits = from_directory(root, image_size=(16, 16), decode=(), exclude=dec, relabel=dec)
    label = dict(zip(splits.files["train"], splits.labels["train"], strict=True))
    assert str(root / cats[0]) not in label and label[str(root / cats[1])] == 1
    assert label[str(root / cats[2])] == 0
