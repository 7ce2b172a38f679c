"""The ``unknown`` answer on real photos: which score, which threshold rule, which embedding.

Not run in CI: like bench_real.py it needs the real `cats_and_dogs_filtered` photos, a real
pretrained MobileNetV2@160 base (setup in bench_real.py's docstring) and folders of foreign
photos (here 1,000 giant pandas and the 328 horses of the Weizmann horse database). Then:

    python benchmarks/bench_unknown.py --data cats_and_dogs_filtered \
        --weights mobilenet_v2_160_base.weights.h5 \
        --foreign pandas=animals/panda --foreign horses=weizmann_horse_db/rgb \
        --cache features.npz

Protocol. Every photo goes once through the base (catdog's decoding, 160x160, its
MobileNetV2 preprocessing, inference mode); from that pass: the final 5x5x1280 feature map
average-pooled (`gap`, the planned embedding) and max-pooled (`gmp`, what catdog's head
pools today), and two earlier depths average-pooled (`mid`: block_13_expand_relu, 10x10x576;
`low`: block_6_expand_relu, 20x20x192). With --cache the features are kept in an .npz, so a
rerun of the scoring takes seconds.

- fit photos: the 2,000 of `train/`. Rules (a) and (b) carve from them the 200 validation
  photos that bench_real.py carves (every 10th file per class): bank/statistics from the other
  1,800, threshold from the 200. Rule (c) uses all 2,000: out-of-fold scores (10 folds, each
  fold scored against the statistics of the other nine), threshold from those 2,000 scores,
  and at test time the statistics of all 2,000.
- held-out in-distribution photos: all 1,000 of `validation/`; no choice looks at them.
- foreign photos: each --foreign folder; no choice looks at them either.

Scores (higher = more foreign; numpy only, see the `score_*` functions): cosine k-NN distance
(1 - the k-th largest cosine similarity to the bank of L2-normalised features), Mahalanobis
with a Ledoit-Wolf shrunk shared covariance (squared distance to the nearest class mean;
`ledoit_wolf` is sklearn's formula in numpy, equal to 1e-8 and ~100x faster), on raw and on
L2-normalised (`unit_`) features, relative Mahalanobis (minus the class-agnostic distance),
the energy of a logistic-regression head (-logsumexp of its logits; with two classes it ranks
images as the maximum softmax probability does), and k-NN or Mahalanobis on several depths
concatenated (each depth L2-normalised).

Threshold rules, each asked for ALPHA = 2% of in-distribution photos answered unknown:
(a) the 98% quantile of the validation scores (numpy's interpolated quantile); (b) the
conformal quantile, the ceil((n+1)(1-alpha))-th smallest of n calibration scores (none past
it when that rank exceeds n); (c) rule (b) over out-of-fold scores of all fit photos.

Then: (1) per score and rule, AUROC of held-out photos against each foreign set and the share
answered unknown (95% Wilson intervals); (2) each rule's held-out rate over random draws of
small calibration sets (bank fixed: 1,500 fit photos; calibration drawn from the other 500),
and over random small data sets (N fit photos in all: (a)/(b) with 10% of them as validation,
(c) out-of-fold over all N); (3) for rule (c), how the held-out rate drifts with the number of
folds (the bank grows from (K-1)/K of the photos to all of them); (4) the bank's size and the
cost of a k-NN per image (numpy; a Keras model normalise -> matmul with a float16 bank ->
top_k, converted to LiteRT by catdog's converter, plain and float16); (5) the audit: the fit
photos with 40 or 5 random foreign photos given random class labels; per-photo outliers
(leave-one-out k-NN, k=10, or out-of-fold Mahalanobis past the conformal threshold of the
data's own scores) and HDBSCAN(min_cluster_size=5) clusters of at most 10% of the photos whose
labels are mixed (majority under 75%) or that lie away from the rest (the median member's
k-NN score against the photos outside the cluster past that threshold at 2%); recall and
precision of "foreign found"; (6) near-duplicates: the cosine similarity of each held-out
photo's copy (resized to 85%, JPEG quality 75) to its original, against the largest
similarity between distinct photos. Results: benchmarks/results/unknown.json (and printed).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

from _common import add_results_arguments, median_seconds, write_results  # noqa: E402

ALPHA = 0.02  # asked share of in-distribution photos answered unknown
VALIDATION_PER_CLASS = 100  # as bench_real.py: every 10th photo of each class of train/
FOLDS = 10  # rule (c)
SIZE = 160
DEPTHS = {"mid": "block_13_expand_relu", "low": "block_6_expand_relu"}
KS = (1, 5, 10, 20, 50)
SEED = 0


# --------------------------------------------------------------------------- photos, features
def list_photos(data: Path) -> dict:
    """Files and labels: ``fit`` (train/), its ``validation`` mask, ``heldout`` (validation/)."""
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    out = {"classes": classes}
    for split, key in (("train", "fit"), ("validation", "heldout")):
        files, labels, held = [], [], []
        for index, name in enumerate(classes):
            names = sorted(p for p in (data / split / name).iterdir() if p.is_file())
            step = max(1, len(names) // VALIDATION_PER_CLASS)
            carved = set(names[::step][:VALIDATION_PER_CLASS])
            files += [str(p) for p in names]
            labels += [index] * len(names)
            held += [p in carved for p in names]
        out[key] = files
        out[f"{key}_labels"] = np.array(labels)
        if key == "fit":
            out["validation"] = np.array(held)
    return out


def build_extractor(weights: Path):
    """0..255 pixels -> {gap, gmp, mid, low} from one pass of catdog's MobileNetV2@160 base."""
    import keras

    from catdog import build_transfer_model
    from catdog.models.classifier import get_base

    model = build_transfer_model((SIZE, SIZE, 3), weights=str(weights))
    base = get_base(model)
    taps = keras.Model(
        base.inputs, [base.output, *(base.get_layer(n).output for n in DEPTHS.values())]
    )
    pixels = keras.Input((SIZE, SIZE, 3))
    final, *earlier = taps(model.layers[0](pixels), training=False)  # layers[0]: preprocessing
    gap = keras.layers.GlobalAveragePooling2D()
    outputs = {"gap": gap(final), "gmp": keras.layers.GlobalMaxPooling2D()(final)}
    outputs.update({name: gap(x) for name, x in zip(DEPTHS, earlier, strict=True)})
    return keras.Model(pixels, outputs), model


def extract(extractor, batches) -> dict:
    """Features of ``(names, pixels)`` batches, float32, by output name."""
    import tensorflow as tf

    run = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    parts: dict = {}
    for _, pixels in batches:
        for name, value in run(tf.constant(pixels)).items():
            parts.setdefault(name, []).append(value.numpy().astype(np.float32))
    return {name: np.concatenate(values) for name, values in parts.items()}


def copy_batches(paths: list[str], scale: float = 0.85, quality: int = 75, batch: int = 32):
    """Each photo resized to ``scale`` of its sides and re-encoded as JPEG ``quality``, then
    decoded as catdog decodes a file: ``(names, pixels)`` batches."""
    import tensorflow as tf

    from catdog.data.images import decode_image

    def copy(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        side = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale), tf.int32)
        small = tf.image.resize(image, side, antialias=True)
        small = tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8)
        return decode_image(tf.io.encode_jpeg(small, quality=quality), (SIZE, SIZE))

    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        yield chunk, np.stack([copy(p).numpy() for p in chunk]).astype(np.float32)


def load_features(args, photos: dict, foreign: dict) -> dict:
    """``{set: {feature: array}}`` for fit, heldout, copies and each foreign set (cached)."""
    from catdog.data.files import image_files
    from catdog.data.images import image_batches

    files = {"fit": photos["fit"], "heldout": photos["heldout"]}
    for name, folder in foreign.items():
        files[name] = image_files([folder])
    if args.cache and args.cache.is_file():
        stored = np.load(args.cache, allow_pickle=False)
        sets = {}
        for key in stored.files:
            split, feature = key.split("/")
            sets.setdefault(split, {})[feature] = stored[key]
        counts = {s: len(f) for s, f in files.items()} | {"copies": len(photos["heldout"])}
        if all(s in sets and len(sets[s]["gap"]) == n for s, n in counts.items()):
            print(f"features from {args.cache}", flush=True)
            return sets
    extractor, model = build_extractor(args.weights)
    check_against_catdog(extractor, model, files["fit"][:8])
    sets, start = {}, time.perf_counter()
    for split, paths in files.items():
        sets[split] = extract(extractor, image_batches(paths, (SIZE, SIZE), batch_size=32))
        print(f"{split}: {len(paths)} photos, {time.perf_counter() - start:.0f} s", flush=True)
    sets["copies"] = extract(extractor, copy_batches(photos["heldout"]))
    print(f"copies: {len(photos['heldout'])}, {time.perf_counter() - start:.0f} s", flush=True)
    if args.cache:
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        flat = {f"{s}/{f}": v for s, feats in sets.items() for f, v in feats.items()}
        np.savez(args.cache, **flat)
    return sets


def check_against_catdog(extractor, model, paths: list[str]) -> None:
    """The max-pooled features equal those of catdog's own feature extractor (its head's input)."""
    from catdog.data.images import load_images
    from catdog.training.feature_cache import split_transfer_model

    pixels = load_images(paths, (SIZE, SIZE))
    ours = extractor(pixels, training=False)["gmp"].numpy()
    catdogs = split_transfer_model(model)[0](pixels, training=False).numpy()
    assert np.allclose(ours, catdogs, atol=1e-4), np.abs(ours - catdogs).max()


# --------------------------------------------------------------------------- scores (numpy)
def unit(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_largest(similarities: np.ndarray, ks) -> np.ndarray:
    """``(n, len(ks))``: the k-th largest of each row, for each k."""
    ks = list(ks)
    part = -np.partition(-similarities, [k - 1 for k in ks], axis=1)
    return part[:, [k - 1 for k in ks]]


def score_knn(bank: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """1 - the k-th largest cosine similarity of each row of ``x`` to the unit ``bank``."""
    return 1.0 - kth_largest(unit(x) @ bank.T, [k])[:, 0]


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf shrunk covariance of rows ``x`` taken as centred, and its shrinkage
    (sklearn.covariance.LedoitWolf's formula, one ``d x d`` product)."""
    n, d = x.shape
    cov = x.T @ x / n
    mu = np.trace(cov) / d
    beta = (np.sum(np.sum(x * x, axis=1) ** 2) / n - np.sum(cov * cov)) / (d * n)
    delta = (np.sum(cov * cov) - 2 * mu * np.trace(cov) + d * mu * mu) / d
    shrinkage = 0.0 if delta == 0 else min(beta, delta) / delta
    cov = (1 - shrinkage) * cov
    cov[np.diag_indices(d)] += shrinkage * mu
    return cov, shrinkage


_FITTED: dict = {}  # Mahalanobis statistics by data: maha_* and rel_maha_* share their fits


def fit_mahalanobis(x: np.ndarray, y: np.ndarray) -> dict:
    """Class means, the shrunk shared precision, and the class-agnostic mean and precision."""
    key = (x.shape, hash(x.tobytes()), hash(y.tobytes()))
    if key not in _FITTED:
        classes = np.unique(y)
        means = np.stack([x[y == c].mean(axis=0) for c in classes])
        shared, _ = ledoit_wolf(x - means[np.searchsorted(classes, y)])
        mean0 = x.mean(axis=0)
        whole, _ = ledoit_wolf(x - mean0)
        _FITTED.clear()
        _FITTED[key] = {
            "means": means,
            "precision": np.linalg.inv(shared),
            "mean0": mean0,
            "precision0": np.linalg.inv(whole),
        }
    return _FITTED[key]


def score_mahalanobis(stats: dict, x: np.ndarray, relative: bool = False) -> np.ndarray:
    """The squared Mahalanobis distance to the nearest class mean (minus the class-agnostic
    one when ``relative``)."""

    def squared(diff, precision):
        return np.sum((diff @ precision) * diff, axis=1)

    nearest = np.min([squared(x - m, stats["precision"]) for m in stats["means"]], axis=0)
    if relative:
        nearest = nearest - squared(x - stats["mean0"], stats["precision0"])
    return nearest


def fit_head(x: np.ndarray, y: np.ndarray):
    """A logistic-regression head on the features (standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)


def score_energy(head, x: np.ndarray) -> np.ndarray:
    """-logsumexp of the head's logits (two classes: logits -z/2, +z/2)."""
    z = head.decision_function(x)
    logits = np.stack([-z / 2, z / 2], axis=1) if z.ndim == 1 else z
    top = logits.max(axis=1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))


def features(sets: dict, split: str, kind: str) -> np.ndarray:
    """One set's features: a name, ``unit_<name>`` (L2-normalised), or depths joined by '+'
    (each L2-normalised, joined)."""
    if kind.startswith("unit_"):
        return unit(sets[split][kind[5:]])
    if "+" not in kind:
        return sets[split][kind]
    return np.concatenate([unit(sets[split][k]) for k in kind.split("+")], axis=1)


def make_scores() -> dict:
    """name -> (feature kind, fit(x, y) -> state, score(state, x) -> scores)."""

    def knn(k):
        return (lambda x, y: unit(x)), (lambda bank, x: score_knn(bank, x, k))

    scores = {f"knn_gap_k{k}": ("gap", *knn(k)) for k in KS}
    for kind in ("gmp", "mid", "gap+mid", "gap+mid+low"):
        for k in (10, 50):
            scores[f"knn_{kind.replace('+', '_')}_k{k}"] = (kind, *knn(k))
    for kind in ("gap", "gmp", "unit_gap", "unit_gmp", "gap+mid"):
        scores[f"maha_{kind.replace('+', '_')}"] = (kind, fit_mahalanobis, score_mahalanobis)
        if "+" in kind:
            continue
        scores[f"rel_maha_{kind}"] = (
            kind,
            fit_mahalanobis,
            lambda s, x: score_mahalanobis(s, x, relative=True),
        )
        scores[f"energy_{kind}"] = (kind, fit_head, score_energy)
    return scores


# --------------------------------------------------------------------------- threshold rules
def quantile_threshold(calibration: np.ndarray, alpha: float = ALPHA) -> float:
    """Rule (a): the interpolated (1 - alpha) quantile."""
    return float(np.quantile(calibration, 1 - alpha))


def conformal_threshold(calibration: np.ndarray, alpha: float = ALPHA) -> float:
    """Rules (b), (c): the ceil((n+1)(1-alpha))-th smallest score; +inf past n."""
    n = len(calibration)
    rank = math.ceil((n + 1) * (1 - alpha) - 1e-9)
    return math.inf if rank > n else float(np.sort(calibration)[rank - 1])


def folds_of(labels: np.ndarray, folds: int, seed: int = SEED) -> np.ndarray:
    """A fold number per photo, stratified by label."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), int)
    for c in np.unique(labels):
        where = rng.permutation(np.flatnonzero(labels == c))
        out[where] = np.arange(len(where)) % folds
    return out


def out_of_fold(fit, score, x: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """Each fold's scores against the statistics of the other folds."""
    fold = folds_of(y, folds)
    out = np.empty(len(x))
    for f in range(folds):
        out[fold == f] = score(fit(x[fold != f], y[fold != f]), x[fold == f])
    return out


# --------------------------------------------------------------------------- measurements
def share(flags: np.ndarray) -> dict:
    from catdog.report.evaluation import wilson_interval

    hits, total = int(np.sum(flags)), len(flags)
    low, high = wilson_interval(hits, total)
    return {"unknown": hits, "total": total, "share": hits / total, "interval": [low, high]}


def main_table(sets: dict, photos: dict, foreign: list[str]) -> tuple[list[dict], dict]:
    """Per score: AUROC per foreign set and, per rule, the shares answered unknown."""
    from sklearn.metrics import roc_auc_score

    y, val = photos["fit_labels"], photos["validation"]
    rows, test_scores = [], {}
    for name, (kind, fit, score) in make_scores().items():
        start = time.perf_counter()
        x = features(sets, "fit", kind)
        tests = {s: features(sets, s, kind) for s in ["heldout", *foreign]}
        state = fit(x[~val], y[~val])  # rules (a), (b): 1,800 + 200
        small = {s: score(state, t) for s, t in tests.items()}
        calibration = score(state, x[val])
        state = fit(x, y)  # rule (c): all 2,000
        whole = {s: score(state, t) for s, t in tests.items()}
        oof = out_of_fold(fit, score, x, y, FOLDS)
        test_scores[name] = {"oof": oof, **whole}
        row = {"key": name, "feature": kind, "auroc": {}, "rules": {}}
        for s in foreign:
            truth = np.r_[np.zeros(len(whole["heldout"])), np.ones(len(whole[s]))]
            row["auroc"][s] = float(roc_auc_score(truth, np.r_[whole["heldout"], whole[s]]))
        for rule, threshold, scored in (
            ("a_quantile_val200", quantile_threshold(calibration), small),
            ("b_conformal_val200", conformal_threshold(calibration), small),
            ("c_conformal_oof2000", conformal_threshold(oof), whole),
        ):
            row["rules"][rule] = {"threshold": threshold} | {
                s: share(scored[s] > threshold) for s in ["heldout", *foreign]
            }
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print_row(row, foreign)
    return rows, test_scores


def print_row(row: dict, foreign: list[str]) -> None:
    auroc = " ".join(f"{row['auroc'][s]:.4f}" for s in foreign)
    cells = []
    for rule in row["rules"].values():
        cells.append(" ".join(f"{rule[s]['share']:6.1%}" for s in ["heldout", *foreign]))
    print(f"{row['key']:<22}{auroc:>16}  " + "  |".join(cells), flush=True)


def knn_similarities(sets: dict, kind: str = "gap") -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities fit x fit (self at -inf) and held-out x fit."""
    fit = unit(features(sets, "fit", kind))
    within = fit @ fit.T
    np.fill_diagonal(within, -np.inf)
    return within, unit(features(sets, "heldout", kind)) @ fit.T


def small_calibration(sets: dict, draws: int, ks=(1, 10, 50)) -> list[dict]:
    """Held-out rate of rules (a), (b) with n calibration photos; bank: 1,500 fixed photos."""
    within, heldout = knn_similarities(sets)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(within))
    bank, pool = order[:1500], order[1500:]
    pool_scores = 1 - kth_largest(within[np.ix_(pool, bank)], ks)
    held_scores = 1 - kth_largest(heldout[:, bank], ks)
    rows = []
    for j, k in enumerate(ks):
        for n in (20, 50, 100, 200, 400):
            for rule, threshold in (("a", quantile_threshold), ("b", conformal_threshold)):
                rates = []
                for _ in range(draws if n < len(pool) else 1):
                    cal = pool_scores[rng.choice(len(pool), n, replace=False), j]
                    rates.append(float(np.mean(held_scores[:, j] > threshold(cal))))
                rows.append(spread(f"knn_gap_k{k}", rule, n, rates))
    return rows


def small_data(sets: dict, draws: int, ks=(1, 10, 50), folds: int = FOLDS) -> list[dict]:
    """Held-out rate with N fit photos in all: (a)/(b) with 10% validation, bank the rest;
    (c) out-of-fold over all N (``folds`` folds, 0 = leave-one-out), bank all N."""
    within, heldout = knn_similarities(sets)
    rng = np.random.default_rng(SEED + 1)
    rows = []
    for size in (100, 200, 500, 1000, len(within)):
        rates: dict = {}
        for _ in range(draws if size < len(within) else 1):
            chosen = rng.choice(len(within), size, replace=False)
            n_val = size // 10
            val, bank = chosen[:n_val], chosen[n_val:]
            cal = 1 - kth_largest(within[np.ix_(val, bank)], ks)
            held = 1 - kth_largest(heldout[:, bank], ks)
            sub = within[np.ix_(chosen, chosen)].copy()
            if folds:
                fold = rng.permutation(size) % folds
                sub[fold[:, None] == fold[None, :]] = -np.inf
            oof = 1 - kth_largest(sub, ks)
            held_all = 1 - kth_largest(heldout[:, chosen], ks)
            for j, k in enumerate(ks):
                for rule, threshold, c, h in (
                    ("a", quantile_threshold, cal, held),
                    ("b", conformal_threshold, cal, held),
                    ("c", conformal_threshold, oof, held_all),
                ):
                    rates.setdefault((k, rule), []).append(
                        float(np.mean(h[:, j] > threshold(c[:, j])))
                    )
        for (k, rule), values in rates.items():
            rows.append(spread(f"knn_gap_k{k}", rule, size, values))
    return rows


def spread(score: str, rule: str, n: int, rates: list[float]) -> dict:
    rates = np.array(rates)
    return {
        "score": score,
        "rule": rule,
        "n": n,
        "draws": len(rates),
        "mean": float(rates.mean()),
        "p10": float(np.quantile(rates, 0.1)),
        "p90": float(np.quantile(rates, 0.9)),
        "within_1_point": float(np.mean(np.abs(rates - ALPHA) <= 0.01)),
        "over_3pct": float(np.mean(rates > ALPHA + 0.01)),
    }


def fold_drift(sets: dict, photos: dict, ks=KS) -> list[dict]:
    """Rule (c) with K folds (0: leave-one-out): threshold from banks of (K-1)/K of the
    2,000, held-out rate against the bank of all 2,000 (the bank grows)."""
    within, heldout = knn_similarities(sets)
    held = 1 - kth_largest(heldout, ks)
    rows = []
    for folds in (2, 5, 10, 20, 0):
        sub = within.copy()
        if folds:
            fold = folds_of(photos["fit_labels"], folds)
            sub[fold[:, None] == fold[None, :]] = -np.inf
        oof = 1 - kth_largest(sub, ks)
        for j, k in enumerate(ks):
            rate = float(np.mean(held[:, j] > conformal_threshold(oof[:, j])))
            rows.append(
                {"score": f"knn_gap_k{k}", "folds": folds or "leave-one-out", "heldout": rate}
            )
    return rows


def operating_curve(test_scores: dict, names: list[str], foreign: list[str]) -> list[dict]:
    """Rule (c) at several asked rates, for the chosen scores."""
    rows = []
    for name in names:
        got = test_scores[name]
        for alpha in (0.005, 0.01, 0.02, 0.05, 0.10):
            t = conformal_threshold(got["oof"], alpha)
            rows.append(
                {"score": name, "alpha": alpha}
                | {s: share(got[s] > t) for s in ["heldout", *foreign]}
            )
    return rows


def knn_cost(sets: dict, repeats: int = 200) -> dict:
    """Bank size in float16; numpy and LiteRT time of one k-NN score per image."""
    bank32 = unit(sets["fit"]["gap"]).astype(np.float32)
    bank16 = bank32.astype(np.float16)
    query = sets["heldout"]["gap"][:32].astype(np.float32)
    out = {
        "bank_shape": list(bank16.shape),
        "bank_float16_bytes": int(bank16.nbytes),
        "bank_float32_bytes": int(bank32.nbytes),
    }
    for batch in (1, 32):
        x = query[:batch]
        ms = median_seconds(lambda x=x: score_knn(bank32, x, 10), repeats) * 1e3
        out[f"numpy_float32_bank_batch{batch}_ms"] = ms
        ms16 = (
            median_seconds(lambda x=x: score_knn(bank16.astype(np.float32), x, 10), repeats) * 1e3
        )
        out[f"numpy_float16_bank_cast_each_call_batch{batch}_ms"] = ms16
    out.update(litert_knn_cost(bank16, query, repeats))
    return out


def litert_knn_cost(bank16: np.ndarray, query: np.ndarray, repeats: int) -> dict:
    """A Keras model unit(x) @ cast(bank16).T -> top_k -> 1 - k-th, on LiteRT."""
    import keras
    from keras import ops

    from catdog.deploy.litert import _interpreter, litert_flatbuffer

    class Knn(keras.layers.Layer):
        def __init__(self, bank, k, **kwargs):
            super().__init__(**kwargs)
            self.k = k
            self.bank = self.add_weight(
                shape=bank.shape,
                dtype="float16",
                trainable=False,
                initializer=keras.initializers.Constant(bank),
            )

        def call(self, x):
            x = x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)
            sims = ops.matmul(x, ops.transpose(ops.cast(self.bank, "float32")))
            return 1.0 - ops.top_k(sims, self.k)[0][:, self.k - 1]

    inputs = keras.Input((bank16.shape[1],))
    model = keras.Model(inputs, Knn(bank16, 10)(inputs))
    keras_scores = keras.ops.convert_to_numpy(model(query))
    out = {}
    for quantize in (None, "float16"):  # the plain conversion folds the cast
        flat = litert_flatbuffer(model, quantize, probabilities=False)
        tag = f"litert_{quantize or 'float32'}"
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_unknown_knn.tflite"
        path.write_bytes(flat)
        interpreter = _interpreter(path)
        out[f"{tag}_file_bytes"] = len(flat)
        for batch in (1, 32):
            detail = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(detail["index"], (batch, bank16.shape[1]))
            interpreter.allocate_tensors()
            x = query[:batch]

            def invoke(detail=detail, x=x, interpreter=interpreter):
                interpreter.set_tensor(detail["index"], x)
                interpreter.invoke()
                return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

            out[f"{tag}_batch{batch}_ms"] = median_seconds(invoke, repeats) * 1e3
            out[f"{tag}_batch{batch}_max_abs_diff_vs_keras"] = float(
                np.abs(invoke() - keras_scores[:batch]).max()
            )
        path.unlink()
    return out


def audit_mix(sets: dict, photos: dict, foreign: list[str], extra: int, draws: int) -> dict:
    """The fit photos plus ``extra`` random foreign photos under random class labels: which
    photos each rule flags, recall and precision of "foreign found" over ``draws`` draws."""
    from sklearn.cluster import HDBSCAN

    fit = unit(sets["fit"]["gap"])
    pool = unit(np.concatenate([sets[s]["gap"] for s in foreign]))
    rng = np.random.default_rng(SEED + extra)
    found: dict = {}
    clusters = {"foreign_in_clusters": [], "foreign_clusters": [], "id_clusters": []}
    for _ in range(draws):
        x = np.concatenate([fit, pool[rng.choice(len(pool), extra, replace=False)]])
        y = np.r_[photos["fit_labels"], rng.integers(0, 2, extra)]
        truth = np.r_[np.zeros(len(fit), bool), np.ones(extra, bool)]
        sims = x @ x.T
        distances = np.sqrt(np.clip(2 - 2 * sims, 0, None))
        np.fill_diagonal(distances, 0)
        np.fill_diagonal(sims, -np.inf)
        knn = 1 - kth_largest(sims, [10])[:, 0]  # leave-one-out
        maha = out_of_fold(fit_mahalanobis, score_mahalanobis, x, y, FOLDS)
        labels = HDBSCAN(min_cluster_size=5, metric="precomputed", copy=True).fit(distances).labels_
        flags = {}
        for alpha in (0.02, 0.01):
            flags[f"knn10_conformal_{alpha:g}"] = knn > conformal_threshold(knn, alpha)
            flags[f"maha_conformal_{alpha:g}"] = maha > conformal_threshold(maha, alpha)
        mixed, away = np.zeros(len(x), bool), np.zeros(len(x), bool)
        limit = conformal_threshold(knn, 0.02)
        for c in range(labels.max() + 1):
            members = labels == c
            if members.sum() > 0.1 * len(x):  # a large cluster is a part of the classes
                continue
            majority = max(np.mean(y[members] == k) for k in (0, 1))
            # leave-cluster-out: each member's k-NN score against the photos outside it
            outside = 1 - kth_largest(sims[np.ix_(members, ~members)], [10])[:, 0]
            typical = float(np.median(outside))
            mixed |= members & (majority < 0.75)
            away |= members & (typical > limit)
            kind = "foreign_clusters" if truth[members].mean() > 0.5 else "id_clusters"
            clusters[kind].append(
                {
                    "size": int(members.sum()),
                    "majority_label": float(majority),
                    "median_outside_knn_over_threshold": typical / limit,
                }
            )
        clusters["foreign_in_clusters"].append(float(np.mean(labels[truth] >= 0)))
        flags["hdbscan_mixed_labels"] = mixed
        flags["hdbscan_away"] = away
        flags["hdbscan_mixed_or_away"] = mixed | away
        flags["proposed"] = away | flags["knn10_conformal_0.01"]
        for name, flagged in flags.items():
            hits = int(np.sum(flagged & truth))
            found.setdefault(name, []).append(
                (hits / extra, hits / max(1, flagged.sum()), int(flagged.sum()))
            )
    rules = {}
    for name, values in found.items():
        recall, precision, count = np.array(values).T
        rules[name] = {
            "recall": float(recall.mean()),
            "recall_min": float(recall.min()),
            "precision": float(precision.mean()),
            "flagged": float(count.mean()),
        }
    return {
        "extra": extra,
        "draws": draws,
        "rules": rules,
        "foreign_in_clusters": float(np.mean(clusters["foreign_in_clusters"])),
        "foreign_clusters": summarise(clusters["foreign_clusters"]),
        "id_clusters": summarise(clusters["id_clusters"]),
    }


def summarise(clusters: list[dict]) -> dict:
    if not clusters:
        return {"count": 0}
    majority = np.array([c["majority_label"] for c in clusters])
    typical = np.array([c["median_outside_knn_over_threshold"] for c in clusters])
    return {
        "count": len(clusters),
        "majority_label_max": float(majority.max()),
        "majority_label_min": float(majority.min()),
        "median_outside_knn_over_threshold_min": float(typical.min()),
        "median_outside_knn_over_threshold_max": float(typical.max()),
    }


def near_duplicates(sets: dict) -> dict:
    """Cosine similarity (GAP) of each held-out photo's copy to its original, against the
    largest similarity of each in-distribution photo to another (distinct) one."""
    photos = unit(np.concatenate([sets["fit"]["gap"], sets["heldout"]["gap"]]))
    copies = unit(sets["copies"]["gap"])
    originals = photos[len(sets["fit"]["gap"]) :]
    pair = np.sum(copies * originals, axis=1)
    sims = photos @ photos.T
    np.fill_diagonal(sims, -np.inf)
    distinct = sims.max(axis=1)
    others = copies @ photos.T
    others[np.arange(len(copies)), len(sets["fit"]["gap"]) + np.arange(len(copies))] = -np.inf
    quantiles = (0.0, 0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999, 1.0)
    out = {
        "copy_to_original": {f"q{q:g}": float(np.quantile(pair, q)) for q in quantiles},
        "distinct_max": {f"q{q:g}": float(np.quantile(distinct, q)) for q in quantiles},
        "copy_to_other_max": float(others.max()),
    }
    i, j = np.unravel_index(np.argsort(sims, axis=None)[-12:][::-1], sims.shape)
    out["top_distinct_pairs"] = sorted(
        {(int(min(a, b)), int(max(a, b)), float(sims[a, b])) for a, b in zip(i, j, strict=True)},
        key=lambda t: -t[2],
    )
    for t in (0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98):
        out[f"at_{t:g}"] = {
            "copies_found": float(np.mean(pair >= t)),
            "photos_with_a_distinct_match": int(np.sum(distinct >= t)),
        }
    return out


# --------------------------------------------------------------------------- main
def parse_foreign(values: list[str]) -> dict:
    out = {}
    for value in values:
        name, _, folder = value.rpartition("=")
        folder = Path(folder)
        out[name or folder.name] = folder
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="cats_and_dogs_filtered")
    parser.add_argument("--weights", type=Path, required=True, help="MobileNetV2@160 base")
    parser.add_argument(
        "--foreign",
        action="append",
        required=True,
        metavar="[NAME=]DIR",
        help="a folder of foreign photos (repeat for several sets)",
    )
    parser.add_argument("--cache", type=Path, help="an .npz that keeps the features")
    parser.add_argument("--draws", type=int, default=200, help="random draws per small size")
    parser.add_argument("--audit-draws", type=int, default=20, help="draws per audit case")
    parser.add_argument("--extract-only", action="store_true", help="fill --cache and stop")
    add_results_arguments(parser, "unknown")
    args = parser.parse_args()
    foreign = parse_foreign(args.foreign)
    photos = list_photos(args.data)
    sets = load_features(args, photos, foreign)
    if args.extract_only:
        return
    names = list(foreign)
    head = " ".join(f"{s:>7}" for s in ["ID", *names])
    print(
        f"\nAUROC (held-out vs {', '.join(names)}) and share answered unknown; rules "
        f"(a) quantile of 200 | (b) conformal of 200 | (c) conformal out-of-fold 2,000"
    )
    print(f"{'score':<22}{'AUROC':>16}  {head}  |{head}  |{head}")
    rows, test_scores = main_table(sets, photos, names)
    extras = {
        "photos": {
            "fit": len(photos["fit"]),
            "validation": int(photos["validation"].sum()),
            "heldout": len(photos["heldout"]),
        }
        | {s: len(sets[s]["gap"]) for s in names}
    }
    best = sorted(
        rows, key=lambda r: -min(r["rules"]["c_conformal_oof2000"][s]["share"] for s in names)
    )
    extras["operating_curve"] = operating_curve(test_scores, [r["key"] for r in best[:4]], names)
    print("\nrule (c) at several asked rates (the 4 scores catching the most foreign at 2%)")
    for row in extras["operating_curve"]:
        print(
            f"{row['score']:<22}{row['alpha']:>7.1%}"
            + "".join(f"{row[s]['share']:>8.1%}" for s in ["heldout", *names])
        )
    extras["small_calibration"] = small_calibration(sets, args.draws)
    extras["small_data"] = small_data(sets, max(1, args.draws // 4))
    for key, title in (
        ("small_calibration", "n calibration photos, bank 1,500"),
        ("small_data", "N fit photos in all (validation 10%; (c) out-of-fold)"),
    ):
        print(f"\nheld-out rate asked 2%: {title}; mean, 10-90% of draws, share within 1 point")
        for row in extras[key]:
            print(
                f"{row['score']:<14}({row['rule']}) n={row['n']:<5} {row['mean']:6.2%} "
                f"[{row['p10']:.2%}, {row['p90']:.2%}] within1={row['within_1_point']:.0%}"
            )
    extras["fold_drift"] = fold_drift(sets, photos)
    print("\nrule (c), held-out rate by folds (bank grows to all 2,000 at test time)")
    for row in extras["fold_drift"]:
        print(f"{row['score']:<14} folds={row['folds']!s:<14} {row['heldout']:.2%}")
    extras["knn_cost"] = knn_cost(sets)
    print(
        "\nk-NN cost",
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in extras["knn_cost"].items()},
    )
    extras["audit"] = [audit_mix(sets, photos, names, extra, args.audit_draws) for extra in (40, 5)]
    for audit in extras["audit"]:
        print(
            f"\naudit: {len(photos['fit'])} photos + {audit['extra']} foreign, "
            f"{audit['draws']} draws; foreign in clusters {audit['foreign_in_clusters']:.0%}"
        )
        print(
            f"  foreign clusters {audit['foreign_clusters']}\n  ID clusters {audit['id_clusters']}"
        )
        for name, r in audit["rules"].items():
            print(
                f"  {name:<24} recall {r['recall']:6.1%} (min {r['recall_min']:5.1%}) "
                f"precision {r['precision']:6.1%} flagged {r['flagged']:.1f}"
            )
    extras["near_duplicates"] = near_duplicates(sets)
    print("\nnear-duplicates", extras["near_duplicates"])
    counts = ", ".join(f"{len(sets[s]['gap'])} {s}" for s in names)
    title = f"The unknown answer on real photos: 1,000 held-out cats/dogs against {counts}"
    write_results(args, title, rows, extras=extras)


if __name__ == "__main__":
    main()
