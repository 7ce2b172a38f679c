"""The audit's checks on the embedding: near-duplicate groups from cosine similarity, outliers
from the leave-one-out k-NN score above the data's own threshold, unfamiliar groups (HDBSCAN
clusters with mixed labels or away from every class); their report and exclusions; and the
audit of a model with a base computing the embedding in the same pass as its features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from catdog.data.synthetic import make_synthetic_dataset

SIZE = 64
PER_CLASS = 150


def _blob(rng, centre, n, spread):
    return centre + spread * rng.standard_normal((n, len(centre)))


def classes_and_strangers(seed: int = 0):
    """Unit embeddings (32-d): two classes of 150 images each, around their own directions; a
    tight group of 8 strangers (labels alternating) elsewhere; one lone stranger; and two
    near copies of image 0. Returns (embeddings, labels, strangers, lone, copies)."""
    from catdog.training.audit_embedding import unit_rows

    rng = np.random.default_rng(seed)
    axes = np.eye(32)
    parts = [
        _blob(rng, axes[0] + axes[2], PER_CLASS, 0.25),
        _blob(rng, axes[1] + axes[3], PER_CLASS, 0.25),
        _blob(rng, axes[5] + axes[6], 8, 0.12),
        _blob(rng, axes[9], 1, 0.0),
    ]
    x = np.concatenate(parts)
    copies = [x[0] + 0.01 * rng.standard_normal(32), x[0] + 0.01 * rng.standard_normal(32)]
    x = unit_rows(np.concatenate([x, copies]))
    labels = np.r_[np.zeros(PER_CLASS), np.ones(PER_CLASS), np.arange(8) % 2, [0], [0, 0]]
    n = 2 * PER_CLASS
    return x, labels.astype(int), list(range(n, n + 8)), n + 8, [n + 9, n + 10]


def test_near_duplicates_are_groups_of_a_high_cosine_similarity():
    from catdog.training.audit_embedding import neighbours, similar_groups

    x, _, _, _, copies = classes_and_strangers()
    groups = similar_groups(*neighbours(x, 10), threshold=0.9)
    assert groups == [[0, *copies]]  # the copies and their original; no other pair is that near
    similarities, indices = neighbours(x, 3)
    assert similarities.shape == indices.shape == (len(x), 3)
    assert not np.any(indices == np.arange(len(x))[:, None])  # leave-one-out
    assert np.all(np.diff(similarities, axis=1) <= 0)  # most similar first
    np.testing.assert_allclose(
        similarities[:, 0], np.sort(x @ x.T - 9 * np.eye(len(x)))[:, -1], atol=1e-5
    )


def test_outliers_are_above_the_tukey_fence_of_the_datas_own_knn_scores():
    from catdog.training.audit_embedding import knn_outliers, neighbours

    x, _, _, lone, _ = classes_and_strangers()
    similarities, _ = neighbours(x, 10)
    outliers, threshold = knn_outliers(similarities)
    scores = 1 - similarities[:, -1]
    first, third = np.quantile(scores, [0.25, 0.75])
    assert threshold == pytest.approx(third + 1.5 * (third - first))
    assert outliers[0] == lone  # the lone stranger is the most severe
    assert set(outliers) == set(np.flatnonzero(scores > threshold))
    assert np.all(np.diff(scores[outliers]) <= 0)  # most severe first


def test_clean_data_has_no_outliers_by_construction_of_a_share():
    from catdog.training.audit_embedding import knn_outliers

    # scores spread evenly: nothing lies past the fence, where a quantile flags its top share
    similarities = np.linspace(0.5, 0.9, 1000)[:, None]
    assert knn_outliers(similarities) == ([], pytest.approx(0.7, abs=1e-3))


def test_a_group_of_strangers_with_mixed_labels_is_an_unfamiliar_group():
    from catdog.training.audit_embedding import embedding_findings

    x, labels, strangers, lone, copies = classes_and_strangers()
    found = embedding_findings(x, labels)
    groups = [set(g) for g, _ in found.unfamiliar]
    assert set(strangers) in groups or any(set(strangers) <= g for g in groups), found.unfamiliar
    assert all(
        len(g & set(range(2 * PER_CLASS))) <= 1 for g in groups
    )  # no class taken for strangers
    why = dict((tuple(g), w) for g, w in found.unfamiliar)
    assert all(w.startswith("away from every class") for w in why.values())
    assert any("mixed labels" in w for w in why.values())
    assert found.duplicates == [[0, *copies]]
    assert lone in found.outliers


def _image(path: str, label: str = "cats"):
    from catdog.report.audit_report import FlaggedImage

    return FlaggedImage(path, "train", label, 0.3, None)


def test_the_report_shows_unfamiliar_groups_escaped_and_excludes_them(tmp_path):
    from catdog.report.audit_report import AuditReport, UnfamiliarGroup

    root = make_synthetic_dataset(tmp_path / "data", images_per_class=4, image_size=(SIZE, SIZE))
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    evil = "<img src=x onerror=alert(1)>"
    shutil.copy(root / files[0], root / "train" / "cats" / f"{evil[1:4]}[x](y).jpg")
    odd = [*files[:2], f"train/cats/{evil[1:4]}[x](y).jpg"]
    group = UnfamiliarGroup([_image(p) for p in odd], f"mixed labels {evil}")
    report = AuditReport(str(root), ["cats", "dogs"], {"train": 9}, unfamiliar=[group])
    assert set(report.exclude()) == set(odd)
    assert "1 unfamiliar group(s) (3 images)" in report.summary_line()
    text = report.save(tmp_path / "audit").read_text()
    assert (
        "## Unfamiliar groups (1)" in text
        and "3 photos that look like none of your classes" in text
    )
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "img\\[x\\](y).jpg" in text
    assert (tmp_path / "audit" / "unfamiliar.png").stat().st_size > 0
    record = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert [i["path"] for i in record["unfamiliar"][0]["images"]] == odd
    assert set(odd) <= set(record["exclude"])


def test_the_audit_of_a_model_with_a_base_uses_the_embedding(tmp_path):
    pytest.importorskip("cleanlab")
    from catdog import audit, build_transfer_model
    from catdog.data.images import load_images
    from catdog.models.weights import make_stand_in_weights
    from catdog.training.audit import EMBEDDING_ISSUE_TYPES

    root = make_synthetic_dataset(tmp_path / "data", images_per_class=12, image_size=(SIZE, SIZE))
    original = sorted((root / "train" / "cats").glob("*.jpg"))[0]
    shutil.copy(original, root / "validation" / "cats" / "copy.jpg")  # catdog moves it to train
    images = load_images([str(p) for p in sorted(root.rglob("*.jpg"))[:16]], (SIZE, SIZE))
    weights = make_stand_in_weights(tmp_path / "w.weights.h5", images)
    model = build_transfer_model((SIZE, SIZE, 3), weights=weights, class_names=["cats", "dogs"])
    report = audit(root, model=model, folds=2)
    assert report.settings["checks"] == EMBEDDING_ISSUE_TYPES
    leak = {str(Path("train/cats") / original.name), "validation/cats/copy.jpg"}
    groups = report.near_duplicates
    assert any(leak <= {i.path for i in g.images} for g in groups), groups
    assert {"near_duplicate", "outlier", "unfamiliar", "label"} <= set(report.summary)
    assert all(0 <= i.score <= 1 for i in report.outliers)
    text = report.save(tmp_path / "audit").read_text()
    assert "on the embedding: near duplicates" in text and "## Unfamiliar groups" in text


def test_a_folder_of_copies_does_not_make_every_other_image_an_outlier():
    from catdog.training.audit_embedding import knn_outliers

    # 80 images whose 10th neighbour is an exact copy, 20 ordinary ones spread evenly
    similarities = np.r_[np.ones(80), np.linspace(0.5, 0.9, 20)][:, None]
    flagged, threshold = knn_outliers(similarities)
    assert flagged == [] and threshold > 0.5
