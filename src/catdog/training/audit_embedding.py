"""The audit's checks on the image embedding (a base's feature map averaged over the image and
made unit length, see [`embedding_of`][catdog.models.confidence.embedding_of]): near
duplicates, outliers and unfamiliar groups, in NumPy and scikit-learn.

- near duplicates: images whose cosine similarity reaches ``DUPLICATE_SIMILARITY``, joined
  into groups (connected components);
- outliers: an image's leave-one-out k-NN score (1 - its ``NEIGHBOURS``-th largest cosine
  similarity to the other images) above the upper Tukey fence of the data's own scores
  (``Q3 + OUTLIER_FENCE x (Q3 - Q1)``): what lies away from the bulk, not a fixed share;
- unfamiliar groups: HDBSCAN clusters of the embedding that lie away from the rest (the
  members' median k-NN score against the images outside the cluster above the conformal
  quantile of the data's own scores at ``GROUP_COVERAGE``), their labels mixed (the largest
  class under ``MIXED_MAJORITY`` of the members) or not: photos of something else that are
  each other's neighbours, which the k-NN outlier score alone misses.

The defaults were chosen on real photos (benchmarks/bench_audit_faults.py; see
docs/guide/audit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catdog.models.confidence import unit_rows  # noqa: F401 (imported from here too)
from catdog.training.neighbours import conformal_quantile

DUPLICATE_SIMILARITY = 0.90
"""Cosine similarity from which two images are near duplicates. Measured on real photos: a
copy resized to 85% and re-encoded as JPEG q75 is at 0.815 or more to its original (1%
quantile 0.894), while distinct photos' largest similarity has its 99.9% quantile at 0.822."""
NEIGHBOURS = 10
"""The k of the k-NN outlier score."""
OUTLIER_FENCE = 1.5
"""Outliers: k-NN scores above ``Q3 + OUTLIER_FENCE x (Q3 - Q1)`` of the data's own scores
(Tukey's fence). Measured on 3,000 real cats and dogs: it flags about 0.3% of them, where the
conformal 99% quantile flagged a fixed 1% whatever was foreign."""
GROUP_COVERAGE = 0.99
"""An unfamiliar group lies away from the rest when its members' median k-NN score against
the other images is above the conformal quantile of the data's own scores at this share."""
CLUSTER_MIN_SIZE = 5
"""HDBSCAN's smallest cluster: the smallest unfamiliar group."""
MIXED_MAJORITY = 0.75
"""A cluster whose largest class holds fewer of its members than this is mixed."""
LARGEST_GROUP_SHARE = 0.1
"""Clusters holding more than this share of the images are part of the classes, not a group of
strangers."""
PRECOMPUTED_UP_TO = 10_000
"""Up to this many images HDBSCAN gets the distance matrix (fast); beyond, the embeddings."""
BLOCK = 1024
"""Rows of the similarity matrix computed at once."""


def with_embedding(extractor):
    """An extractor ending in its base's global pooling, made to output the pooled features
    and the embedding side by side (``2 x`` channels) from one pass of the base.

    Examples:
        ```python
        both = with_embedding(feature_extractor("transfer", ["cats", "dogs"])[0])
        ```
    """
    import keras

    from catdog.training.feature_cache import PoolAndEmbed

    *front, pool = extractor.layers
    pooling = "max" if type(pool).__name__ == "GlobalMaxPooling2D" else "avg"
    return keras.Sequential(
        [
            keras.Input(extractor.input_shape[1:]),
            *front,
            PoolAndEmbed(pooling, name="pool_and_embed"),
        ],
        name="features",
    )


@dataclass
class EmbeddingFindings:
    """What the embedding checks found, as indices into the audited images.

    ``duplicates``: groups of indices, with ``duplicate_similarity[i]`` the largest similarity
    of image ``i`` to another member; ``outliers``: indices, most severe first, with
    ``knn_similarity[i]`` the k-th largest similarity of image ``i`` to the others;
    ``unfamiliar``: ``(indices, why)`` per group; ``threshold``: the outlier threshold (a k-NN
    score, 1 - similarity).
    """

    duplicates: list[list[int]]
    duplicate_similarity: np.ndarray
    outliers: list[int]
    knn_similarity: np.ndarray
    unfamiliar: list[tuple[list[int], str]]
    threshold: float


def neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, indices)``, each ``(n, k)``: every image's ``k`` most similar other
    images, most similar first, computed in blocks of ``BLOCK`` rows.

    Examples:
        >>> s, i = neighbours(np.eye(3, dtype="float32"), 1)
        >>> i[:, 0].tolist(), s[:, 0].tolist()
        ([1, 0, 0], [0.0, 0.0, 0.0])
    """
    n = len(embeddings)
    k = min(k, n - 1)
    similarities, indices = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
    for start in range(0, n, BLOCK):
        block = embeddings[start : start + BLOCK] @ embeddings.T
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf  # leave each image out of its own neighbours
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        indices[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        similarities[start : start + len(block)] = np.take_along_axis(
            block, indices[start : start + len(block)], axis=1
        )
    return similarities, indices


def similar_groups(similarities, indices, threshold: float = DUPLICATE_SIMILARITY):
    """Groups (sorted lists of two indices or more) of images joined by a similarity of at
    least ``threshold`` among their neighbours (see ``neighbours``).

    Examples:
        >>> x = unit_rows([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, -1]])
        >>> similar_groups(*neighbours(x, 2), 0.99)
        [[0, 1], [2, 3]]
    """
    pairs = zip(similarities, indices, strict=True)
    return near_duplicate_groups([linked[row >= threshold] for row, linked in pairs])


def near_duplicate_groups(sets) -> list[list[int]]:
    """Groups of images connected through per-image lists of the images each one is linked to
    (cleanlab's ``near_duplicate_sets``, or close neighbours), each sorted, of two or more.

    Examples:
        >>> near_duplicate_groups([[1], [0], [], [4], [3, 5], [4]])
        [[0, 1], [3, 4, 5]]
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    rows = [i for i, others in enumerate(sets) for _ in others]
    columns = [int(j) for others in sets for j in others]
    graph = csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(sets), len(sets)))
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(component):
        groups.setdefault(int(c), []).append(i)
    return sorted(g for g in groups.values() if len(g) > 1)


def knn_scores_of(similarities) -> np.ndarray:
    """Each image's leave-one-out k-NN score: 1 - the last column of ``similarities``."""
    return 1.0 - np.asarray(similarities)[:, -1].astype(np.float64)


def knn_outliers(similarities, fence: float = OUTLIER_FENCE) -> tuple[list[int], float]:
    """``(outliers most severe first, threshold)``: the images whose leave-one-out k-NN score
    (1 - the last column of ``similarities``) is above the upper Tukey fence of all the
    scores, ``Q3 + fence x (Q3 - Q1)``.

    Examples:
        >>> s = np.array([[0.8], [0.7], [0.75], [0.78], [0.1]])
        >>> flagged, threshold = knn_outliers(s)
        >>> flagged, round(threshold, 3)
        ([4], 0.42)
    """
    scores = knn_scores_of(similarities)
    # the spread of the images that are not copies of their k-th neighbour: a folder of burst
    # shots (scores of 0) would otherwise set a fence of 0 and flag every other image
    apart = scores[scores > 1.0 - DUPLICATE_SIMILARITY]
    first, third = np.quantile(apart if len(apart) >= 4 else scores, [0.25, 0.75])
    threshold = float(third + fence * (third - first))
    flagged = np.flatnonzero(scores > threshold)
    return [int(i) for i in flagged[np.argsort(-scores[flagged], kind="stable")]], threshold


def clusters(embeddings: np.ndarray, min_size: int = CLUSTER_MIN_SIZE) -> np.ndarray:
    """HDBSCAN's cluster of every image (-1: none), on the cosine distance of the embedding
    (Euclidean on unit rows)."""
    from sklearn.cluster import HDBSCAN

    if len(embeddings) <= min_size:
        return np.full(len(embeddings), -1)
    if len(embeddings) > PRECOMPUTED_UP_TO:
        return HDBSCAN(min_cluster_size=min_size, copy=True).fit(embeddings).labels_
    distances = np.sqrt(np.clip(2.0 - 2.0 * (embeddings @ embeddings.T), 0.0, None))
    np.fill_diagonal(distances, 0.0)
    return (
        HDBSCAN(min_cluster_size=min_size, metric="precomputed", copy=False).fit(distances).labels_
    )


def unfamiliar_groups(embeddings, labels, cluster, threshold: float, k: int = NEIGHBOURS):
    """``[(indices, why)]``: the clusters (``cluster``: a cluster number per image, -1 none)
    of at most ``LARGEST_GROUP_SHARE`` of the images whose members' median k-NN score against
    the images outside the cluster is above ``threshold`` (``why`` adds whether their labels
    are mixed); an image in no cluster whose nearest neighbour is in such a group joins it.
    Mixed labels alone do not make a group: on real photos with 5% of the labels flipped,
    clusters of real cats or dogs have mixed labels too."""
    found = []
    for c in range(int(cluster.max(initial=-1)) + 1):
        members = np.flatnonzero(cluster == c)
        if len(members) == 0 or len(members) > LARGEST_GROUP_SHARE * len(embeddings):
            continue
        majority = np.bincount(labels[members]).max() / len(members)
        outside = np.setdiff1d(np.arange(len(embeddings)), members)
        kth = min(k, len(outside))
        similar = embeddings[members] @ embeddings[outside].T
        away = 1.0 - float(np.median(-np.partition(-similar, kth - 1, axis=1)[:, kth - 1]))
        if away > threshold:  # mixed labels alone: a cluster of real photos with flipped labels
            mixed = f"; mixed labels (largest class {majority:.0%})"
            found.append(
                (members, "away from every class" + (mixed if majority < MIXED_MAJORITY else ""))
            )
    return [(_with_nearest(embeddings, cluster, members), why) for members, why in found]


def _with_nearest(embeddings, cluster, members) -> list[int]:
    """``members`` and the images in no cluster whose nearest neighbour is one of them."""
    loose = np.flatnonzero(cluster < 0)
    if len(loose) == 0:
        return [int(i) for i in members]
    similar = embeddings[loose] @ embeddings.T
    similar[np.arange(len(loose)), loose] = -np.inf
    joined = loose[np.isin(similar.argmax(axis=1), members)]
    return sorted(int(i) for i in np.union1d(members, joined))


def embedding_findings(embeddings, labels, *, k: int = NEIGHBOURS) -> EmbeddingFindings:
    """Near duplicates, outliers and unfamiliar groups of the (unit) ``embeddings`` of images
    labelled ``labels`` (class numbers).

    Examples:
        ```python
        found = embedding_findings(unit_rows(embeddings), labels)
        ```
    """
    embeddings, labels = unit_rows(embeddings), np.asarray(labels)
    if len(embeddings) < 3:
        empty = np.ones(len(embeddings), np.float32)
        return EmbeddingFindings([], empty, [], empty, [], 1.0)
    similarities, indices = neighbours(embeddings, k)
    groups = similar_groups(similarities, indices)
    outliers, threshold = knn_outliers(similarities)
    away = conformal_quantile(knn_scores_of(similarities), GROUP_COVERAGE)
    cluster = clusters(embeddings)
    return EmbeddingFindings(
        duplicates=groups,
        duplicate_similarity=similarities[:, 0],
        outliers=outliers,
        knn_similarity=similarities[:, -1],
        unfamiliar=unfamiliar_groups(embeddings, labels, cluster, away, k),
        threshold=threshold,
    )


def embedding_report_parts(found: EmbeddingFindings, image):
    """``(near-duplicate groups, outliers, unfamiliar groups, summary)`` for the
    [`AuditReport`][catdog.report.audit_report.AuditReport], each image made by
    ``image(index, score)``; scores in 0..1, lower is worse: 1 - the similarity to the closest
    group member (near duplicates), the k-th largest similarity to the others (outliers and
    unfamiliar groups)."""
    from catdog.report.audit_report import DuplicateGroup, UnfamiliarGroup

    def score(values, i: int) -> float:
        return float(np.clip(values[i], 0.0, 1.0))

    closest = 1.0 - np.asarray(found.duplicate_similarity, np.float64)
    groups = [DuplicateGroup([image(i, score(closest, i)) for i in g]) for g in found.duplicates]
    outliers = [image(i, score(found.knn_similarity, i)) for i in found.outliers]
    unfamiliar = [
        UnfamiliarGroup([image(i, score(found.knn_similarity, i)) for i in members], why)
        for members, why in found.unfamiliar
    ]
    n = max(1, len(found.knn_similarity))
    counts = {
        "near_duplicate": sum(len(g) for g in found.duplicates),
        "outlier": len(found.outliers),
        "unfamiliar": sum(len(g) for g, _ in found.unfamiliar),
    }
    summary = {kind: {"count": c, "score": 1.0 - c / n} for kind, c in counts.items()}
    return groups, outliers, unfamiliar, summary
