"""Multi-label data: from a [`LabelTable`][catdog.data.label_table.LabelTable] (which classes
each photo shows, none included) to leak-free train/validation/test datasets of multi-hot
labels. The split is stratified by label set, keeps byte-identical copies in one split and
leaves out an exclude list's photos, as [`split_files`][catdog.data.files.split_files] does
for class folders; the photos are decoded once and cached, as for single-label data."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence

from catdog._rules import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SEED,
    SPLIT_NAMES,
    check_fraction,
    check_int,
    check_printable_class_names,
    check_sides,
)
from catdog.data.exclusions import Exclude, excluded_paths
from catdog.data.files import content_keys, one_split_per_image, split_three_ways
from catdog.data.label_table import LabelTable, read_label_table
from catdog.data.pipelines import Splits, batch_pipeline, decoded_split
from catdog.errors import DatasetError, InvalidArgumentError

logger = logging.getLogger("catdog")

DEFAULT_FRACTIONS = (0.2, 0.2)
"""``(validation, test)`` shares of each label set's photos, as for class folders."""

LABEL_SET_SEPARATOR = "+"
"""What joins the classes of a label set in its stratum key (``"cats+dogs"``)."""


def label_set_key(labels: Sequence[str]) -> str:
    """The stratum of a photo's label set: its classes, sorted (so that the split does not
    depend on the classes' order), joined by ``+``; ``""`` for none.

    Examples:
        >>> label_set_key(("dogs", "cats")), label_set_key(())
        ('cats+dogs', '')
    """
    return LABEL_SET_SEPARATOR.join(sorted(labels))


def split_label_table(
    table: LabelTable,
    *,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float] = DEFAULT_FRACTIONS,
    exclude: Exclude = None,
) -> dict[str, list[str]]:
    """Decide which split each photo of ``table`` belongs to; no photo is read.

    The split is stratified by label set (``"cats+dogs"``, ``"dogs"``, ``""`` for none: each
    set's photos are split by ``fractions``, ``(validation, test)``) and depends only on the
    paths and ``seed``. Byte-identical copies go to one split (a warning names copies with
    different labels). The photos ``exclude`` lists (paths absolute, or relative to the labels
    file's folder; an ``audit.json``; a text file: as ``catdog train --exclude`` takes them)
    are then dropped, so every other photo keeps its split. Every class must keep a photo
    that shows it in the training split, else
    [`InvalidArgumentError`][catdog.errors.InvalidArgumentError] names it and the fix.

    Returns ``{split: [paths]}``, each split in the table's order.

    Examples:
        ```python
        split = split_label_table(read_label_table("photos/labels.csv"), seed=1)
        len(split["train"]), len(split["validation"]), len(split["test"])
        # (1800, 600, 600)
        ```
    """
    if len(fractions) != 2:
        raise InvalidArgumentError(f"fractions must be (validation, test), got {fractions!r}.")
    check_fraction("validation_fraction", fractions[0])
    check_fraction("test_fraction", fractions[1])
    strata: dict[str, list[str]] = {}
    for path, labels in table.rows.items():
        strata.setdefault(label_set_key(labels), []).append(path)
    keys = content_keys(list(table.rows))
    sets = one_split_per_image(
        split_three_ways(strata, fractions[0], fractions[1], seed, keys),
        keys,
        contradiction="with different labels (contradicting labels); label every copy alike",
    )
    chosen = {split: {p for paths in sets[split].values() for p in paths} for split in SPLIT_NAMES}
    left_out = excluded_paths(_root(table), list(table.rows), exclude)
    split = {
        s: [p for p in table.rows if p in chosen[s] and p not in left_out] for s in SPLIT_NAMES
    }
    if not any(split.values()):
        raise InvalidArgumentError(
            f"{_listed_by(exclude)} leaves out every photo of the labels table (all "
            f"{len(table.rows)}): check that it lists only the photos to leave out."
        )
    before = [p for p in table.rows if p in chosen["train"]]
    for name in _unlearnable(table, split["train"]):
        _refuse_class(table, name, shown_before=_shows(table, before, name), exclude=exclude)
    return split


def _root(table: LabelTable) -> str:
    """The folder an exclude list's relative paths start from: the labels file's."""
    if table.source:
        return os.path.dirname(table.source)
    return os.path.commonpath(list(table.rows)) if table.rows else os.path.abspath(".")


def _listed_by(exclude: Exclude, start: str = "The") -> str:
    if isinstance(exclude, str | os.PathLike):
        return f"{start} exclude list {str(exclude)!r}"
    return f"{start} exclude= list"


def _shows(table: LabelTable, paths: Sequence[str], name: str) -> int:
    return sum(name in table.rows[p] for p in paths)


def _unlearnable(table: LabelTable, train: Sequence[str]) -> list[str]:
    """The classes that no training photo shows."""
    return [name for name in table.class_names if not _shows(table, train, name)]


def _refuse_class(table: LabelTable, name: str, *, shown_before: int, exclude: Exclude) -> None:
    """Raise the error that says why ``name`` has no training photo, and what to do."""
    where = repr(table.source) if table.source else "the labels table"
    count = _shows(table, list(table.rows), name)
    if shown_before:
        cause = (
            f"{_listed_by(exclude, 'the')} leaves out all {shown_before} training photo(s) "
            "that show it. Take some of them off the list, or drop the class"
        )
    elif count:
        cause = (
            f"its {count} photo(s) all went to validation or test. Label more photos with it "
            "(a few dozen), or lower the fractions"
        )
    else:
        cause = f"no photo of {where} shows it. Label some photos with it, or drop the class"
    raise InvalidArgumentError(
        f"Class {name!r} has no training photo: {cause} (a model cannot learn a class it "
        "never sees)."
    )


def from_label_table(
    table_or_path: LabelTable | str | os.PathLike,
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    class_names: Sequence[str] | None = None,
    exclude: Exclude = None,
    cache: str | os.PathLike | None = "memory",
    fractions: tuple[float, float] = DEFAULT_FRACTIONS,
) -> Splits:
    """Build leak-free train/validation/test datasets of multi-label photos.

    ``table_or_path`` is a [`LabelTable`][catdog.data.label_table.LabelTable] or a labels
    file (see [`read_label_table`][catdog.data.label_table.read_label_table]); the split is
    [`split_label_table`][catdog.data.multilabel.split_label_table]'s. The datasets yield
    ``(float32 images (batch, height, width, 3) in 0..255, float32 multi-hot (batch,
    classes))``; the returned [`Splits`][catdog.data.pipelines.Splits] has ``multi_label``
    set and, in ``labels[split]``, a tuple of class indices per file. Photos are decoded once
    and cached (``cache``: ``"memory"`` or a folder, keyed on the files and their labels);
    files too large or not decodable are skipped with one warning naming them and why.
    ``class_names`` fixes the classes and their order (every label must be one of them).

    Examples:
        ```python
        splits = from_label_table("photos/labels.csv", image_size=(96, 96), seed=1)
        images, multi_hot = next(iter(splits.train))
        multi_hot.shape
        # TensorShape([32, 2])
        ```
    """
    table = _table(table_or_path, class_names)
    split_paths = split_label_table(table, seed=seed, fractions=fractions, exclude=exclude)
    return splits_from_lists(
        table, split_paths, image_size=image_size, batch_size=batch_size, seed=seed, cache=cache
    )


def splits_from_lists(
    table: LabelTable,
    split_paths: dict[str, Sequence[str]],
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = DEFAULT_SEED,
    cache: str | os.PathLike | None = "memory",
) -> Splits:
    """Multi-label datasets of a split you chose: ``split_paths`` gives ``{split: [paths]}``
    (``"train"``, ``"validation"``, ``"test"``; paths as ``table`` has them), as
    [`split_label_table`][catdog.data.multilabel.split_label_table] returns it. The datasets
    are [`from_label_table`][catdog.data.multilabel.from_label_table]'s; no photo may be in
    two splits, and every class needs a training photo that decodes.

    Examples:
        ```python
        table = read_label_table("photos/labels.csv")
        splits = splits_from_lists(table, {"train": fit, "validation": tune, "test": held_out})
        ```
    """
    image_size = check_sides("image_size", image_size, 2)
    check_int("batch_size", batch_size)
    check_printable_class_names(table.class_names)
    _check_split_paths(table, split_paths)
    index = {name: i for i, name in enumerate(table.class_names)}
    datasets, files, labels, skipped = {}, {}, {}, []
    for split in SPLIT_NAMES:
        pairs = [(p, tuple(index[n] for n in table.rows[p])) for p in split_paths[split]]
        ds, files[split], labels[split], not_kept = decoded_split(
            pairs, image_size, cache, _cache_name(split, pairs), classes=len(index)
        )
        skipped += not_kept
        datasets[split] = batch_pipeline(
            ds, batch_size=batch_size, shuffle=split == "train", seed=seed, size=len(files[split])
        )
    _check_decoded(table, files["train"], skipped)
    return Splits(
        **datasets,
        class_names=list(table.class_names),
        files=files,
        labels=labels,
        image_size=image_size,
        batch_size=batch_size,
        skipped=skipped,
        multi_label=True,
    )


def _check_split_paths(table: LabelTable, split_paths: dict[str, Sequence[str]]) -> None:
    """Refuse a split that names no known split, a photo not in the table, or one photo twice."""
    if sorted(split_paths) != sorted(SPLIT_NAMES):
        raise InvalidArgumentError(
            f"split_paths must have exactly the splits {list(SPLIT_NAMES)}, got "
            f"{sorted(split_paths)}."
        )
    seen: dict[str, str] = {}
    for split in SPLIT_NAMES:
        for path in split_paths[split]:
            if path not in table.rows:
                raise InvalidArgumentError(f"{path!r} ({split}) is not a photo of the table.")
            if path in seen:
                raise InvalidArgumentError(
                    f"{path!r} is in both {seen[path]!r} and {split!r}: a photo belongs to one "
                    "split (else the scores leak)."
                )
            seen[path] = split


def _check_decoded(table: LabelTable, train_files: Sequence[str], skipped: list) -> None:
    """Warn of the skipped files; refuse when a class has no training photo left."""
    if skipped:
        logger.warning(
            "Skipped %d file(s): %s",
            len(skipped),
            "; ".join(f"{path} ({reason})" for path, reason in skipped),
        )
    if not train_files:
        raise DatasetError("No training photo could be decoded; check the labels file's photos.")
    for name in _unlearnable(table, train_files):
        raise DatasetError(
            f"Class {name!r} has no training photo that decodes: replace the unreadable ones "
            "named above, or label more photos with it."
        )


def _cache_name(split: str, pairs: list[tuple[str, tuple[int, ...]]]) -> str:
    """The split's name in its cache file, with a digest of its labels: the cache holds the
    labels, which a labels file can change while the photos stay the same."""
    digest = hashlib.sha256(repr(pairs).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{split}-labels{digest}"


def _table(table_or_path: LabelTable | str | os.PathLike, class_names) -> LabelTable:
    """The table to split: read from a file, or a given table in ``class_names``' order."""
    if not isinstance(table_or_path, LabelTable):
        return read_label_table(table_or_path, None if class_names is None else list(class_names))
    table = table_or_path
    if class_names is None or list(class_names) == table.class_names:
        return table
    order = list(class_names)
    unknown = sorted({n for labels in table.rows.values() for n in labels} - set(order))
    if unknown:
        raise InvalidArgumentError(
            f"The labels {', '.join(map(repr, unknown))} of the table are not among the classes "
            f"{order}: pass class_names that include them, or relabel those photos."
        )
    rows = {p: tuple(n for n in order if n in labels) for p, labels in table.rows.items()}
    return LabelTable(order, rows, table.source)
