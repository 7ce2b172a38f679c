"""Embeddings of a run's images and the search among them: is this photo already in my data,
which training images does the model see it as?

[`embed`][catdog.runs.embeddings.embed] maps images to one unit vector each (the pooled
features of a model's pretrained base, see
[`embedding_model`][catdog.deploy.embeddings.embedding_model]);
[`run_embeddings`][catdog.runs.embeddings.run_embeddings] embeds every image of a run's
splits once and keeps them in the run folder (``embeddings.npz``);
[`similar`][catdog.runs.embeddings.similar] finds the training images nearest to new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from catdog._rules import SPLIT_NAMES, check_int
from catdog.data.files import image_files
from catdog.data.images import PREDICT_BATCH_SIZE
from catdog.deploy.embeddings import Embeddings, image_embeddings
from catdog.errors import InputFileNotFoundError, InvalidArgumentError, OutputError
from catdog.io import sha256sum, temporary_folder
from catdog.report.interpret import plot_neighbours
from catdog.runs.evaluate import run_splits
from catdog.runs.record import RunFolder

if TYPE_CHECKING:
    import keras

logger = logging.getLogger("catdog")

EMBEDDINGS_FORMAT = 1
"""The version of how a run's embeddings are computed: a cache of another version is redone."""


def embed(
    model: keras.Model | str | os.PathLike,
    images,
    *,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
) -> Embeddings:
    """One embedding per image: the L2-normalised, globally averaged features of the model's
    pretrained base, float32 (cosine similarity is their dot product).

    Args:
        model: a catdog transfer model (one with a pretrained base), a ``.keras`` file, or a
            run folder of ``catdog train`` (its ``model.keras``). The small CNNs have no
            base to embed with and are refused.
        images (np.ndarray | str | Sequence[str]): an array ``(n, h, w, 3)`` of 0..255
            pixels at the model's input size, image files, or folders (searched
            recursively). Files that do not decode are skipped with a warning naming them.
        engine: ``"auto"`` (LiteRT, converted once and cached, else TensorFlow),
            ``"litert"`` or ``"tensorflow"``.
        batch_size: images read and run at a time.

    Returns:
        [`Embeddings`][catdog.deploy.embeddings.Embeddings] (``paths`` set for files).

    Examples:
        >>> import numpy as np
        >>> from catdog.models.transfer import build_transfer_model
        >>> model = build_transfer_model((32, 32, 3), weights=None)
        >>> vectors = embed(model, np.zeros((2, 32, 32, 3)), engine="tensorflow").vectors
        >>> vectors.shape, vectors.dtype
        ((2, 1280), dtype('float32'))
    """
    return image_embeddings(_model(model), images, engine=engine, batch_size=batch_size)


def _model(model) -> keras.Model:
    """A Keras model, loaded from a ``.keras`` file or a run folder when given a path."""
    if not isinstance(model, str | os.PathLike):
        return model
    from catdog.models.saving import load_model

    path = Path(model)
    if path.is_dir():
        path = RunFolder(path).model
        if not path.is_file():
            raise InputFileNotFoundError(
                f"{str(model)!r} holds no {RunFolder.MODEL}: pass a run folder of catdog train "
                "or a .keras file."
            )
    return load_model(path)


def run_embeddings(
    run: str | os.PathLike, *, engine: str = "auto", batch_size: int = PREDICT_BATCH_SIZE
) -> Embeddings:
    """The embeddings of every image of a run's train, validation and test splits, labelled.

    The run's split is recreated as ``catdog evaluate`` recreates it
    ([`run_splits`][catdog.runs.evaluate.run_splits]: the run's data, seed and exclusions).
    The result is kept in ``RUN/embeddings.npz`` with a fingerprint of the model file, the
    run's record and the data folder's files (names, sizes, modification times): later calls
    read it back, and recompute it once any of them changed.

    Examples:
        ```python
        bank = run_embeddings("runs/demo")
        bank.splits.count("train"), bank.vectors.shape
        # (240, (400, 1280))
        ```
    """
    folder = _run_folder(run)
    record = folder.record()
    if record is None:
        raise InvalidArgumentError(
            f"{str(run)!r} has no config.json of catdog train, so its images are unknown: "
            "pass a run folder written by catdog train."
        )
    key = _source_key(folder, record)
    cached = _cached(folder, key)
    if cached is not None:
        return cached
    bank = _compute(folder, engine, batch_size)
    bank.fingerprint = key
    try:
        bank.save(folder.embeddings)
    except OutputError as error:  # a read-only run folder still answers, without a cache
        logger.warning("%s The embeddings are computed again next time.", error)
    return bank


def _run_folder(run: str | os.PathLike) -> RunFolder:
    folder = RunFolder(run)
    if not folder.path.is_dir():
        raise InputFileNotFoundError(f"Run folder {str(run)!r} does not exist.")
    if not folder.model.is_file():
        raise InputFileNotFoundError(
            f"{str(run)!r} holds no {RunFolder.MODEL}: pass a finished run folder of catdog train."
        )
    return folder


def _source_key(folder: RunFolder, record: dict) -> str:
    """A SHA-256 of what a run's embeddings are computed from: the model file, the record's
    data, seed, exclusions and split, the class names beside the model, the data's files."""
    digest = hashlib.sha256(f"catdog embeddings {EMBEDDINGS_FORMAT}\n".encode())
    digest.update(sha256sum(folder.model).encode())
    fields = ("data", "seed", "exclude", "relabelled", "splits", "class_names")
    digest.update(json.dumps({f: record.get(f) for f in fields}, sort_keys=True).encode())
    for source in (folder.class_names, Path(str(record.get("exclude") or ""))):
        if source.is_file():
            digest.update(sha256sum(source).encode())
    data = str(record["data"])
    for root, dirs, files in os.walk(data):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            entry = f"{os.path.relpath(os.path.join(root, name), data)}|{stat.st_size}|"
            digest.update(f"{entry}{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _cached(folder: RunFolder, key: str) -> Embeddings | None:
    """The run's cached embeddings when computed from the same sources, else ``None``."""
    if not folder.embeddings.is_file():
        return None
    try:
        cached = Embeddings.load(folder.embeddings)
    except InvalidArgumentError as error:
        logger.warning("%s Computing the embeddings again.", error)
        return None
    if cached.fingerprint != key:
        logger.info(
            "%s is out of date (the model or the data changed): computing it again.",
            folder.embeddings,
        )
        return None
    return cached


def _compute(folder: RunFolder, engine: str, batch_size: int) -> Embeddings:
    """Embed every image of the run's splits, as ``catdog evaluate`` recreates them."""
    from catdog.models.saving import load_model

    model = load_model(folder.model)
    with temporary_folder("catdog-embeddings-") as cache:
        splits = run_splits(folder.model, model, batch_size=batch_size, cache=cache, decode=())
    known = {
        path: (label, split)
        for split in SPLIT_NAMES
        for path, label in zip(splits.files[split], splits.labels[split], strict=True)
    }
    logger.info("embedding the %d images of %s's splits", len(known), folder.path)
    bank = image_embeddings(model, list(known), engine=engine, batch_size=batch_size)
    return Embeddings(
        bank.vectors,
        paths=bank.paths,
        labels=[known[p][0] for p in bank.paths],
        splits=[known[p][1] for p in bank.paths],
        class_names=list(splits.class_names),
    )


@dataclass(frozen=True)
class Neighbour:
    """One image found near a query: its file, its class (``None`` when unlabelled), its
    split (``None`` when unknown) and its cosine similarity to the query (1 at most)."""

    path: str
    label: str | None
    split: str | None
    similarity: float


def similar(
    images,
    run: str | os.PathLike,
    k: int = 8,
    *,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
) -> list[list[Neighbour]]:
    """The ``k`` images of a run's data most similar to each of ``images``, most similar first.

    Similarity is the cosine similarity of embeddings (see
    [`embed`][catdog.runs.embeddings.embed]) by the run's model, among every image of the
    run's train, validation and test splits
    ([`run_embeddings`][catdog.runs.embeddings.run_embeddings], computed once and kept in the
    run folder). A near copy of an image of the data (resized, re-encoded) finds it first.

    Args:
        images (Sequence[str] | np.ndarray): image files or folders (one list per file, in
            [`image_files`][catdog.data.files.image_files]' order), or an array ``(n, h, w,
            3)`` of 0..255 pixels; a file that cannot be read is refused, naming it.
        run: a run folder of ``catdog train``.
        k: neighbours per image (at most the number of the run's images).
        engine: where the model runs: ``"auto"``, ``"litert"`` or ``"tensorflow"``.
        batch_size: images read and run at a time.

    Examples:
        ```python
        for near in similar(["photo.jpg"], "runs/demo", k=3)[0]:
            print(f"{near.similarity:.3f} {near.split} {near.label} {near.path}")
        ```
    """
    check_int("k", k)
    bank = run_embeddings(run, engine=engine, batch_size=batch_size)
    model = _model(RunFolder(run).path)
    queries = image_embeddings(
        model, images, engine=engine, batch_size=batch_size, skip_unreadable=False
    )
    return neighbours(bank, queries, k)


def similar_table(
    images,
    run: str | os.PathLike,
    k: int = 8,
    *,
    out: str | os.PathLike | None = None,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
) -> str:
    """What ``catdog similar`` prints: for each image file (folders searched recursively), its
    path, then one tab-separated line per neighbour (rank, similarity to 3 decimals, split,
    class, path), a blank line between images; with ``out``, the grid of
    [`plot_neighbours`][catdog.report.interpret.plot_neighbours] is written to
    ``out/similar.png`` too. The arguments are [`similar`][catdog.runs.embeddings.similar]'s.

    Examples:
        ```python
        print(similar_table(["photo.jpg"], "runs/demo", k=3))
        ```
    """
    queries = image_files([images] if isinstance(images, str | os.PathLike) else list(images))
    found = similar(queries, run, k, engine=engine, batch_size=batch_size)
    text = "\n\n".join(
        query
        + "".join(
            f"\n{rank}\t{n.similarity:.3f}\t{n.split or '-'}\t{n.label or '-'}\t{n.path}"
            for rank, n in enumerate(near, start=1)
        )
        for query, near in zip(queries, found, strict=True)
    )
    if out is not None:
        path = Path(out) / "similar.png"
        plot_neighbours(queries, found, path=path)
        text += f"\n\nfigure: {path}"
    return text


def neighbours(bank: Embeddings, queries: Embeddings, k: int) -> list[list[Neighbour]]:
    """For each row of ``queries``, its ``k`` nearest images of ``bank`` as ``Neighbour``s.

    Examples:
        ```python
        neighbours(run_embeddings("runs/demo"), embed("runs/demo", ["a.jpg"]), 5)
        ```
    """
    indices, similarities = bank.nearest(queries, k)
    names = bank.class_names

    def label(i: int) -> str | None:
        if bank.labels is None or bank.labels[i] < 0:
            return None
        index = int(bank.labels[i])
        return names[index] if names and index < len(names) else str(index)

    return [
        [
            Neighbour(
                path=bank.paths[i] if bank.paths else f"image_{i}",
                label=label(i),
                split=bank.splits[i] if bank.splits else None,
                similarity=float(s),
            )
            for i, s in zip(row, row_similarities, strict=True)
        ]
        for row, row_similarities in zip(indices, similarities, strict=True)
    ]
