"""Auditing a labelled image folder before training on it (what ``catdog audit`` does).

The base of a pretrained model computes every image's features once (as cached-feature
training does, on LiteRT where that pays off); a logistic-regression head, trained k-fold on
those features, gives every image out-of-fold class probabilities (seconds, not a retrain);
then cleanlab's ``Datalab`` finds label issues, near duplicates, outliers and class imbalance
from the features and probabilities. The result is an
[`AuditReport`][catdog.report.audit_report.AuditReport]: files ranked by severity,
near-duplicate groups marked as leaks when they span splits, and the files it suggests
excluding (``from_directory(..., exclude=...)``, ``catdog train --exclude audit.json``).

Needs the ``audit`` extra (cleanlab, with scikit-learn): ``pip install "catdog[audit]"``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IMAGE_SIDE,
    DEFAULT_SEED,
    ENGINES,
    SPLIT_NAMES,
    check_choice,
    check_int,
)
from catdog.data.files import split_files
from catdog.data.pipelines import labelled_dataset
from catdog.errors import DatasetError, InvalidArgumentError, MissingExtraError
from catdog.models.confidence import Confidence
from catdog.models.registry import build_model, model_spec
from catdog.models.saving import load_model
from catdog.report.audit_report import AuditReport, DuplicateGroup, FlaggedImage
from catdog.timings import Timings
from catdog.training.audit_embedding import (
    embedding_findings,
    embedding_report_parts,
    near_duplicate_groups,
    unit_rows,
    with_embedding,
)
from catdog.training.feature_cache import extract_features, prepare_extraction_engine

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("catdog")

ISSUE_TYPES = ("label", "near_duplicate", "outlier", "class_imbalance")
"""The checks an audit asks cleanlab's Datalab for, for a model without a base. Its non-i.i.d.
check is left out: the order it would test is catdog's own listing (split, class, file name),
not the data's."""
EMBEDDING_ISSUE_TYPES = ("label", "class_imbalance")
"""The checks asked of cleanlab for a model with a base: near duplicates, outliers and
unfamiliar groups come from the embedding (see
[`catdog.training.audit_embedding`][catdog.training.audit_embedding])."""


def require_cleanlab():
    """cleanlab's ``Datalab`` class, or a one-line error naming the extra to install.

    Examples:
        ```python
        Datalab = require_cleanlab()
        ```
    """
    try:
        import cleanlab  # noqa: F401
        import sklearn  # noqa: F401 (cleanlab's dependency; the k-fold head)

        # not `from cleanlab import Datalab`: without the [datalab] extra that name is a
        # placeholder that fails only when called, after the features are extracted
        from cleanlab.datalab.datalab import Datalab
    except ImportError as error:
        raise MissingExtraError(
            f"catdog audit needs cleanlab ({error.name or 'cleanlab'} is missing): "
            'pip install "catdog[audit]"'
        ) from None
    return Datalab


def audit(
    data: str | os.PathLike,
    *,
    model: str | os.PathLike | keras.Model = "transfer",
    backbone: str | None = None,
    weights: str | os.PathLike | None = "imagenet",
    folds: int = 5,
    image_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    engine: str = "auto",
) -> AuditReport:
    """Audit an image folder for label errors, near duplicates (leaks across splits) and
    outliers, before training on it or believing a score measured on it.

    Every image of every split (as [`split_files`][catdog.data.files.split_files] splits the
    folder with ``seed``, so each file's split is the one ``catdog train --seed`` uses) gets
    the model's pooled base features and out-of-fold probabilities from a ``folds``-fold
    logistic regression on them; cleanlab's ``Datalab`` then ranks the issues.

    Args:
        data: an image folder as ``catdog train`` reads it: ``train/`` and ``validation/``
            (and ``test/``) sub-folders of class folders, or one folder per class.
        model: where the features come from: a registered model with a pretrained base
            (``"transfer"``, a backbone name such as ``"efficientnet_v2_b0"``), a ``.keras``
            file (a run's ``model.keras``: its base, or its layer before the classifier), or a
            built ``keras.Model``.
        backbone: the base of ``"transfer"`` (default ``"mobilenet_v2"``).
        weights: the base's weights for a registered model: ``"imagenet"``, ``None`` or a
            weights file (see
            [`build_transfer_model`][catdog.models.transfer.build_transfer_model]).
        folds: the folds of the out-of-fold probabilities, at least 2; every class needs as
            many images.
        image_size: the square side images are read at; default: the model's input size.
        batch_size: images per batch of the feature extraction.
        seed: the split seed (as ``catdog train --seed``) and the folds' seed.
        engine: where the base runs: ``"auto"`` (LiteRT for a few thousand images and more),
            ``"litert"`` or ``"tensorflow"``.

    Examples:
        ```python
        report = audit("data/pets")
        print(report.summary_line())
        report.save("audit")  # audit.md, audit.json, thumbnail grids
        ```
    """
    require_cleanlab()
    check_int("folds", folds, minimum=2)
    timings = Timings()
    with timings.phase("features"):  # listing, decoding and the base's pass over every image
        features, embeddings, labels, files, class_names, settings = _features(
            data, model, backbone, weights, image_size, batch_size, seed, engine
        )
    return audit_features(
        features, labels, files, class_names, settings, data, embeddings, folds, seed,
        timings=timings,
    )  # fmt: skip


def audit_features(
    features,
    labels,
    files,
    class_names,
    settings,
    data,
    embeddings=None,
    folds=5,
    seed=0,
    start=None,
    *,
    timings: Timings | None = None,
) -> AuditReport:
    """The [`AuditReport`][catdog.report.audit_report.AuditReport] of images whose features
    (and embeddings, for a model with a base) are computed: what ``audit`` does after the
    extraction. ``files``: ``(path relative to data, split)`` per image; ``settings``: how the
    features were made (``model``, ``image_size``, ``engine``, ``skipped``); ``timings`` the
    job's so far (the settings record them all, with images per second).

    Examples:
        ```python
        report = audit_features(features, labels, files, ["cats", "dogs"], settings, "data",
                                embeddings)
        ```
    """
    start = time.perf_counter() if start is None else start
    timings = timings or Timings()
    head_input = features if embeddings is None else unit_rows(embeddings)
    kinds = ISSUE_TYPES if embeddings is None else EMBEDDING_ISSUE_TYPES
    with timings.phase("label issues"):  # the out-of-fold head, then cleanlab
        probabilities = out_of_fold_probabilities(
            head_input, labels, folds, seed, class_names, embedding=embeddings is not None
        )
        lab = require_cleanlab()(data={"label": labels}, label_name="label", verbosity=0)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # cleanlab's notes on its own defaults (and prints)
            lab.find_issues(
                features=features,
                pred_probs=probabilities,
                issue_types={kind: {} for kind in kinds},
            )
    with timings.phase("duplicates, outliers, groups"):
        found = None if embeddings is None else embedding_findings(embeddings, labels)
    settings.update(
        folds=folds,
        head="logistic regression" + ("" if embeddings is None else " on the embedding"),
        accuracy=float(np.mean(probabilities.argmax(axis=1) == labels)),
        majority_baseline=float(np.bincount(labels).max() / len(labels)),
        checks=kinds,
        seconds=round(time.perf_counter() - start, 1),
        timings=timings.to_dict(),
    )
    _warn_if_weak(settings)
    return _report(lab, files, labels, class_names, settings, data, found)


EMBEDDING_C = 1.0
"""The out-of-fold head's ``C`` on unit embeddings (1 of 0.1, 1, 10, on 3,000 real photos with
5% of labels flipped: right for 98% of the true labels, 94% on the standardised pooled
features; cleanlab found 90-93% of the flips at 95% precision, 87% at 60% before)."""
WEAK_MARGIN = 0.1
"""Out-of-fold accuracy within this much of the majority baseline: the features barely tell
the classes apart, and the audit warns that its label issues mean little."""


def _warn_if_weak(settings: dict) -> None:
    """Warn when the features barely separate the classes (see ``WEAK_MARGIN``)."""
    if settings["accuracy"] < settings["majority_baseline"] + WEAK_MARGIN:
        logger.warning(
            "The out-of-fold head scores %.1f%% against a majority baseline of %.1f%%: "
            "%s's features barely tell the classes apart, so its label issues mean little. "
            "Audit with a pretrained base (--weights imagenet) or a trained run's model.keras.",
            100 * settings["accuracy"],
            100 * settings["majority_baseline"],
            settings["model"],
        )


def _features(data, model, backbone, weights, image_size, batch_size, seed, engine):
    """``(features, embeddings (None without a base), labels, files (path, split), class names,
    settings)`` of every image."""
    check_choice("engine", engine, ENGINES)
    class_names, split_paths = split_files(data, seed=seed)
    extractor, side, described = feature_extractor(
        model, class_names, backbone, weights, image_size
    )
    split_of, paths, labels = _listing(class_names, split_paths)
    dataset, kept, kept_labels, skipped = labelled_dataset(
        paths, labels, image_size=(side, side), batch_size=batch_size
    )
    if skipped:
        logger.warning(
            "Skipped %d file(s): %s", len(skipped), "; ".join(f"{p} ({why})" for p, why in skipped)
        )
    with_base = "base" in [layer.name for layer in extractor.layers]
    if with_base:  # one pass of the base: the pooled features and the embedding
        extractor = with_embedding(extractor)
        engine = prepare_extraction_engine(extractor, len(kept), engine)
    else:  # the layer before a classifier: no base to convert
        engine = "tensorflow"
    logger.info("audit: features of %d images (%s, %s)", len(kept), described, engine)
    features, _ = extract_features(extractor, dataset, engine=engine)
    features, embeddings = features.reshape(len(kept), -1), None
    if with_base:
        width = features.shape[1] // 2
        features, embeddings = features[:, :width], features[:, width:]
    settings = {"model": described, "image_size": side, "engine": engine, "skipped": skipped}
    files = [(os.path.relpath(p, data), split_of[p]) for p in kept]
    return features, embeddings, np.asarray(kept_labels), files, class_names, settings


def _listing(class_names, split_paths):
    """``({path: split}, paths, class numbers)`` of every image, split by split."""
    split_of, split_class = {}, {}
    for split in SPLIT_NAMES:
        for name in class_names:
            for path in split_paths[split].get(name, []):
                split_of[path], split_class[path] = split, name
    paths = list(split_of)
    return split_of, paths, [class_names.index(split_class[p]) for p in paths]


def feature_extractor(model, class_names, backbone=None, weights="imagenet", image_size=None):
    """``(extractor, image side, description)``: the model that maps 0..255 pixels to the
    features an audit uses (the pooled base, else the layer before the classifier).

    Examples:
        ```python
        extractor, side, what = feature_extractor("transfer", ["cats", "dogs"])
        ```
    """
    import keras

    if backbone and model != "transfer":
        raise InvalidArgumentError(
            f"backbone picks the base of the transfer model; with {model!r} leave it out (a "
            "backbone is a model name too: pass it as the model)."
        )
    if isinstance(model, keras.Model):
        built, described = model, model.name
    elif str(model).endswith(".keras") or Path(model).is_file():
        built, described = load_model(model), str(model)
    else:
        built, described = _registered(str(model), class_names, backbone, weights, image_size)
    side = int(built.input_shape[1])
    if image_size is not None and image_size != side:
        raise InvalidArgumentError(
            f"{described} takes {side}x{side} images; leave image_size out for a built or "
            "saved model."
        )
    if not isinstance(built, keras.Sequential):
        raise InvalidArgumentError(
            f"{described} is not a catdog (Sequential) model: pass a registered model name, a "
            "catdog .keras file or a catdog model."
        )
    kept = [layer for layer in built.layers if not isinstance(layer, Confidence)]
    names = [layer.name for layer in kept]
    layers = kept[: names.index("global_pool") + 1] if "base" in names else kept[:-1]
    extractor = keras.Sequential([keras.Input(built.input_shape[1:]), *layers], name="features")
    return extractor, side, described


def _registered(name, class_names, backbone, weights, image_size):
    """A registered model with a pretrained base, built for the features: (model, description)."""
    spec = model_spec(name)
    if not spec.pretrained:
        raise InvalidArgumentError(
            f"{name!r} has no pretrained base whose features could audit the data: use "
            "--model transfer (with --backbone), a backbone such as efficientnet_v2_b0, or a "
            "run's model.keras."
        )
    side = image_size or spec.input_size or DEFAULT_IMAGE_SIDE
    kwargs = (
        {"class_names": class_names}
        if spec.takes_class_names
        else {"num_classes": len(class_names)}
    )
    if backbone:
        kwargs["backbone"] = backbone
    built = build_model(name, input_shape=(side, side, 3), weights=weights, **kwargs)
    return built, f"{name}" + (f" ({backbone})" if backbone else "")


def out_of_fold_probabilities(
    features, labels, folds: int, seed: int, class_names, *, embedding: bool = False
) -> np.ndarray:
    """Each image's class probabilities from a logistic regression trained on the other folds:
    ``(n, classes)``, columns in class order. ``embedding``: ``features`` are unit-length
    embeddings, used as they are (see ``EMBEDDING_C``); otherwise standardised, ``C=0.1``.

    Examples:
        ```python
        probabilities = out_of_fold_probabilities(features, labels, 5, 1337, ["cat", "dog"])
        ```
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels, minlength=len(class_names))
    if counts.min() < folds:
        few = ", ".join(f"{n}: {c}" for n, c in zip(class_names, counts, strict=True) if c < folds)
        raise DatasetError(
            f"A {folds}-fold audit needs at least {folds} readable images per class ({few}); "
            "add images or pass fewer folds (--folds)."
        )
    if embedding:
        head = LogisticRegression(max_iter=1000, C=EMBEDDING_C)
    else:
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(
            head,
            features,
            labels,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            method="predict_proba",
        )


def _report(lab, files, labels, class_names, settings, data, found=None) -> AuditReport:
    """The [`AuditReport`][catdog.report.audit_report.AuditReport] of a Datalab's findings."""
    ran = set(lab.get_issue_summary()["issue_type"])  # too few images skip some checks
    believed = lab.get_issues("label")["predicted_label"].to_numpy()

    def flagged(kind: str, predicted: bool = False) -> list[FlaggedImage]:
        if kind not in ran:
            return []
        issues = lab.get_issues(kind)
        rows = issues[issues[f"is_{kind}_issue"]].sort_values(f"{kind}_score")
        return [image(i, float(rows.at[i, f"{kind}_score"]), predicted) for i in rows.index]

    def image(i: int, score: float, predicted: bool = False) -> FlaggedImage:
        path, split = files[i]
        model_says = class_names[int(believed[i])] if predicted else None
        return FlaggedImage(path, split, class_names[labels[i]], score, model_says)

    summary = {
        row.issue_type: {"count": int(row.num_issues), "score": float(row.score)}
        for row in lab.get_issue_summary().itertuples()
    }
    skipped, unfamiliar = settings.pop("skipped"), []
    if found is None:
        groups, outliers = _duplicate_groups(lab, image) if "near_duplicate" in ran else [], None
        _note_checks_not_run(settings, ran)
    else:
        groups, outliers, unfamiliar, found_summary = embedding_report_parts(found, image)
        summary.update(found_summary)
    groups.sort(key=lambda g: (not g.leak, min(i.score for i in g.images)))
    counts = {s: sum(1 for _, split in files if split == s) for s in SPLIT_NAMES}
    return AuditReport(
        data=os.path.abspath(data),
        class_names=list(class_names),
        counts=counts,
        label_issues=flagged("label", predicted=True),
        outliers=flagged("outlier") if outliers is None else outliers,
        near_duplicates=groups,
        unfamiliar=unfamiliar,
        summary=summary,
        settings=settings,
        skipped=[tuple(s) for s in skipped],
    )


def _duplicate_groups(lab, image) -> list[DuplicateGroup]:
    """The near-duplicate groups of a Datalab, each image made by ``image(index, score)``."""
    scores = lab.get_issues("near_duplicate")["near_duplicate_score"]
    sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
    return [
        DuplicateGroup([image(i, float(scores.iloc[i])) for i in members])
        for members in near_duplicate_groups(sets)
    ]


def _note_checks_not_run(settings: dict, ran: set) -> None:
    """Record and log the checks cleanlab could not run (too few images for them)."""
    missing = [kind for kind in ISSUE_TYPES if kind not in ran]
    if missing:
        settings["checks_not_run"] = missing
        logger.warning(
            "Too few images for cleanlab's %s check(s): the report leaves them out.",
            ", ".join(missing),
        )
