"""Embeddings: one unit vector per image from a model's pretrained base, to compare images.

An image's embedding is its transfer model's base's final feature map, averaged over the
image (global average pooling, whatever pooling the classifier's head uses) and L2-normalised:
two images' cosine similarity is the dot product of their embeddings.
[`embedding_model`][catdog.deploy.embeddings.embedding_model] builds that model,
[`image_embeddings`][catdog.deploy.embeddings.image_embeddings] runs it on images (TensorFlow or
LiteRT, as [`Predictor`][catdog.deploy.predict.Predictor] runs a classifier), and
[`Embeddings`][catdog.deploy.embeddings.Embeddings] holds the vectors with their files, labels
and splits, saves them as a plain ``.npz`` and finds nearest neighbours. A run's embeddings and
the search over them are [`catdog.embed`][catdog.runs.embeddings.embed] and
[`catdog.similar`][catdog.runs.embeddings.similar].
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog._rules import check_int
from catdog.data.files import image_files
from catdog.data.images import PREDICT_BATCH_SIZE, image_batches, read_image_batches
from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.io import write_atomic

if TYPE_CHECKING:
    import keras

    from catdog.deploy.predict import Predictor

logger = logging.getLogger("catdog")

_TEXT_FIELDS = ("paths", "splits", "class_names")


@dataclass(eq=False)
class Embeddings:
    """Unit vectors of images, with what is known of each image.

    ``vectors`` is a float32 ``(n, d)`` array of unit rows; ``paths`` (the image files),
    ``labels`` (class indices, ``-1`` for none) and ``splits`` (``"train"``, ``"validation"``,
    ``"test"``) have one entry per row, or are ``None``; ``class_names`` names the labels.
    ``fingerprint`` says what the vectors were computed from (for caches), or is ``None``.

    Examples:
        >>> bank = Embeddings(np.eye(3, dtype="float32"), paths=["a.png", "b.png", "c.png"])
        >>> indices, similarities = bank.nearest(np.array([[0.6, 0.8, 0.0]]), k=2)
        >>> indices.tolist(), similarities.astype(float).round(2).tolist()
        ([[1, 0]], [[0.8, 0.6]])
    """

    vectors: np.ndarray
    paths: list[str] | None = None
    labels: np.ndarray | None = None
    splits: list[str] | None = None
    class_names: list[str] | None = None
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise InvalidArgumentError(f"vectors must have shape (n, d), got {self.vectors.shape}.")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
        for name in ("paths", "labels", "splits"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.vectors):
                raise InvalidArgumentError(
                    f"{name} has {len(value)} entries for {len(self.vectors)} vectors."
                )

    def __len__(self) -> int:
        return len(self.vectors)

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` file atomically, readable by NumPy alone (no pickle).

        ``np.load(path)`` gives the arrays ``vectors``, ``paths``, ``labels``, ``splits``
        and ``class_names`` (texts as unicode arrays; a field that is ``None`` as an empty
        array) and ``fingerprint`` (a 0-d text array, empty for none).

        Examples:
            ```python
            embeddings.save("bank.npz")
            np.load("bank.npz")["vectors"].shape
            # (120, 1280)
            ```
        """
        arrays = {
            "vectors": self.vectors,
            "labels": np.zeros(0, np.int64) if self.labels is None else self.labels,
            "fingerprint": np.asarray(self.fingerprint or "", dtype=str),
        }
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            arrays[name] = np.asarray([] if value is None else list(value), dtype=str)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as out:  # a file object: savez adds no suffix
                np.savez(out, **arrays)

        return write_atomic(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Embeddings:
        """Read a file written by [`save`][catdog.deploy.embeddings.Embeddings.save].

        Examples:
            ```python
            bank = Embeddings.load("runs/demo/embeddings.npz")
            ```
        """
        if not Path(path).is_file():
            raise InputFileNotFoundError(f"Embeddings file {str(path)!r} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            return cls._from_arrays(arrays)
        except (OSError, ValueError, KeyError) as error:
            raise InvalidArgumentError(
                f"{str(path)!r} is not an embeddings file written by catdog ({_why(error)}); "
                "write it again with Embeddings.save (or delete it: a run's is recomputed)."
            ) from None

    @classmethod
    def _from_arrays(cls, arrays: dict) -> Embeddings:
        vectors = arrays["vectors"]
        if vectors.dtype.kind != "f":
            raise ValueError(f"its vectors are of type {vectors.dtype}, not floats")
        n = len(vectors)

        def given(name: str):
            value = arrays.get(name)
            return None if value is None or (len(value) == 0 and n) else value

        texts = {name: given(name) for name in _TEXT_FIELDS}
        names = arrays.get("class_names")
        return cls(
            vectors,
            paths=None if texts["paths"] is None else [str(p) for p in texts["paths"]],
            labels=given("labels"),
            splits=None if texts["splits"] is None else [str(s) for s in texts["splits"]],
            class_names=[str(c) for c in names] if names is not None and len(names) else None,
            fingerprint=str(arrays["fingerprint"]) or None if "fingerprint" in arrays else None,
        )

    def nearest(self, query: Embeddings | np.ndarray, k: int = 8):
        """``(indices, similarities)``, both ``(q, k)``: each query's ``k`` most similar rows
        (cosine similarity, highest first; ``k`` clipped to the number of rows).

        ``query`` is an ``Embeddings`` of the same model, or an array of ``(q, d)`` vectors
        (or one ``(d,)`` vector), normalised here.
        """
        check_int("k", k)
        vectors = query.vectors if isinstance(query, Embeddings) else _unit_rows(query)
        if vectors.shape[1] != self.vectors.shape[1]:
            raise InvalidArgumentError(
                f"The query vectors have {vectors.shape[1]} dimensions and these embeddings "
                f"{self.vectors.shape[1]}: embed both with the same model."
            )
        similarities = vectors @ self.vectors.T
        k = min(k, len(self))
        if k == 0:
            return np.zeros((len(vectors), 0), np.int64), np.zeros((len(vectors), 0), np.float32)
        top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        top_similarities = np.take_along_axis(similarities, top, axis=1)
        order = np.lexsort((top, -top_similarities), axis=1)  # highest first, ties by row
        indices = np.take_along_axis(top, order, axis=1)
        return indices, np.take_along_axis(similarities, indices, axis=1)


def _why(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"it has no {error.args[0]!r} array"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _unit_rows(vectors) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    array = array[None] if array.ndim == 1 else array
    if array.ndim != 2:
        raise InvalidArgumentError(f"query must have shape (q, d), got {array.shape}.")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def embedding_model(model: keras.Model) -> keras.Model:
    """The model from 0..255 pixels to embeddings: ``model``'s preprocessing and pretrained
    base (in inference mode, no augmentation), global average pooling and L2 normalisation
    (float32). It shares ``model``'s layers and weights.

    A model without a pretrained base (a layer named ``base``: the small CNNs) is refused.

    Examples:
        >>> from catdog.models.transfer import build_transfer_model
        >>> embedding_model(build_transfer_model((32, 32, 3), weights=None)).output_shape
        (None, 1280)
    """
    import keras

    from catdog.models.classifier import inference_model
    from catdog.models.confidence import ImageEmbedding

    names = [layer.name for layer in getattr(model, "layers", [])]
    if not isinstance(model, keras.Sequential) or "base" not in names:
        name = getattr(model, "name", type(model).__name__)
        raise InvalidArgumentError(
            f"Model {name!r} has no pretrained base (a layer named 'base') to embed images "
            "with: use a transfer model (catdog train --model transfer) or a backbone (e.g. "
            "--model efficientnet_v2_b0)."
        )
    kept = inference_model(model).layers
    position = [layer.name for layer in kept].index("base")
    return keras.Sequential(
        [
            keras.Input(model.input_shape[1:], name="image"),
            *kept[: position + 1],
            ImageEmbedding(name="embedding"),
        ],
        name="embedding",
    )


def image_embeddings(
    model: keras.Model | Predictor,
    images,
    *,
    engine: str = "auto",
    batch_size: int = PREDICT_BATCH_SIZE,
    skip_unreadable: bool = True,
) -> Embeddings:
    """The [`Embeddings`][catdog.deploy.embeddings.Embeddings] of images by a Keras model, or
    by a [`Predictor`][catdog.deploy.predict.Predictor] of its
    [`embedding_model`][catdog.deploy.embeddings.embedding_model] (made once, to embed many
    batches without converting the model again; ``engine`` is then its own).

    ``images`` is an array ``(n, h, w, 3)`` of 0..255 pixels (one image ``(h, w, 3)`` too),
    an image file or folder, or a list of them (folders searched recursively, see
    [`image_files`][catdog.data.files.image_files]); files are read ``batch_size`` at a time
    at the model's input size. A file that does not decode or is too large is skipped with a
    warning naming it (``skip_unreadable=False``: refused); a missing file is refused. The
    embedding model ([`embedding_model`][catdog.deploy.embeddings.embedding_model]) runs on
    ``engine`` as a [`Predictor`][catdog.deploy.predict.Predictor] does: ``"auto"`` is LiteRT
    (converted once, cached) where the conversion works, else TensorFlow.

    Examples:
        ```python
        vectors = image_embeddings(model, "photos/").vectors
        ```
    """
    from catdog.deploy.predict import Predictor

    predictor = model if isinstance(model, Predictor) else None
    if predictor is None:
        predictor = Predictor(
            embedding_model(model), engine=engine, batch_size=batch_size, probabilities=False
        )
    if isinstance(images, np.ndarray):
        return Embeddings(predictor(images.astype(np.float32, copy=False)))
    given = [images] if isinstance(images, str | os.PathLike) else list(images)
    names = image_files(given)
    size = tuple(predictor.input_shape[:2])
    batches = _readable_batches(names, size, batch_size) if skip_unreadable else None
    if batches is None:
        batches = image_batches(names, size, batch_size)
    kept, vectors = [], []
    for chunk, pixels in batches:
        kept += chunk
        vectors.append(predictor(pixels))
    if names and not kept:
        raise InvalidArgumentError(
            f"None of the {len(names)} image file(s) could be read (BMP, GIF, JPEG, PNG or WebP "
            "expected)."
        )
    dimensions = int(predictor.classes)
    return Embeddings(
        np.concatenate(vectors) if vectors else np.zeros((0, dimensions), np.float32),
        paths=kept,
    )


def _readable_batches(
    names: Sequence[str], size: tuple[int, int], batch_size: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(decoded files, pixels)`` of each batch that
    [`read_image_batches`][catdog.data.images.read_image_batches] reads, the files that do not
    decode left out with one warning naming them (a missing or too large file raises first, as
    for ``catdog predict``)."""
    skipped = []
    for batch in read_image_batches(names, size, batch_size):
        skipped += [(p, why) for p, why in zip(batch.paths, batch.errors, strict=True) if why]
        if batch.decoded:
            yield batch.decoded, batch.pixels
    if skipped:
        logger.warning(
            "Skipped %d file(s): %s", len(skipped), "; ".join(f"{p} ({w})" for p, w in skipped)
        )
