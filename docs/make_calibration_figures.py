"""Compare out-of-distribution scores on generated data; draw the calibration guide's figures.

    python docs/make_calibration_figures.py     # a few minutes on 2 CPU cores

Generates the demo's cats and dogs (64x64) and a held-out third kind of image that neither class
shows (green triangles, ``make_unknown_images``), trains two models (the demo's small CNN end to
end, and a MobileNetV2 transfer model on offline stand-in weights with cached features), and
for each model and each score (maximum softmax probability, energy, Mahalanobis distance,
k-nearest neighbours) sets the threshold that accepts 99% of the validation images and counts
the held-out images it flags. Writes ``docs/generated/ood_comparison.md`` and
``docs/images/{reliability,risk_coverage,ood_scores}.png``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COVERAGE = 0.99
METHODS = ("msp", "energy", "mahalanobis", "knn")
SIZE = 64


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an outside image scores higher than an inside one), ties counted half."""
    inside, outside = np.asarray(inside)[:, None], np.asarray(outside)[None, :]
    return float(np.mean((outside > inside) + 0.5 * (outside == inside)))


def energy_scores(model, pixels: np.ndarray) -> np.ndarray:
    """The energy score ``-logsumexp(logits)`` (higher: less like the training images)."""
    from catdog.models.classifier import inference_model

    layers = inference_model(model).layers
    features = pixels
    for layer in layers[:-1]:
        features = layer(features, training=False)
    kernel, bias = (np.asarray(w, np.float64) for w in layers[-1].get_weights())
    logits = np.asarray(features, np.float64) @ kernel + bias
    top = logits.max(axis=1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))


def build_models(splits, root: Path) -> dict:
    """The demo's CNN (end to end) and a transfer model on stand-in weights (cached features)."""
    import keras

    from catdog import build_model, build_transfer_model, train
    from catdog.models.weights import make_stand_in_weights

    keras.utils.set_random_seed(0)
    cnn = build_model("preprocessed", input_shape=(SIZE, SIZE, 3), class_names=splits.class_names)
    train(cnn, splits, epochs=8, verbose=0)
    images = np.concatenate([x for x, _ in splits.train.take(4)])
    weights = make_stand_in_weights(root / "stand_in.weights.h5", images)
    transfer = build_transfer_model((SIZE, SIZE, 3), weights=str(weights),
                                    class_names=splits.class_names)  # fmt: skip
    train(transfer, splits, epochs=10, cache_features=True, augment_copies=2, verbose=0)
    return {"small CNN (preprocessed)": cnn, "transfer (MobileNetV2, stand-in weights)": transfer}


def pixels_of(splits, split: str) -> tuple[np.ndarray, np.ndarray]:
    data = [(np.asarray(x), np.asarray(y)) for x, y in getattr(splits, split)]
    return np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data])


def compare(model, splits, other: np.ndarray) -> tuple[dict, object]:
    """Per method: held-out share flagged, test share accepted, AUROC, and the scores."""
    from catdog import calibrate
    from catdog.deploy.predict import predict_scores

    validation, _ = pixels_of(splits, "validation")
    test, test_labels = pixels_of(splits, "test")
    rows, first = {}, None
    for method in METHODS:
        if method == "energy":
            threshold = np.quantile(energy_scores(model, validation), COVERAGE, method="higher")
            inside, outside = energy_scores(model, test), energy_scores(model, other)
            probs = predict_scores(model, test)[0]
        else:
            result = calibrate(model, splits, method=method, unknown_coverage=COVERAGE)
            first = first or result
            threshold = result.threshold
            probs, inside = predict_scores(model, test)
            outside = predict_scores(model, other)[1]
        rows[method] = {
            "flagged": float(np.mean(outside > np.float32(threshold))),
            "accepted": float(np.mean(inside <= np.float32(threshold))),
            "auroc": auroc(inside, outside),
            "inside": inside, "outside": outside, "threshold": float(threshold),
            "correct": probs.argmax(axis=1) == test_labels,
        }  # fmt: skip
    return rows, first


def table(found: dict) -> str:
    lines = [
        "| model | score | held-out kind flagged | test images accepted | AUROC |",
        "|---|---|---|---|---|",
    ]
    for name, (rows, _, _) in found.items():
        for method, row in rows.items():
            lines.append(f"| {name} | {method} | {row['flagged']:.0%} | {row['accepted']:.0%} | "
                         f"{row['auroc']:.3f} |")  # fmt: skip
    lines.append("")
    for name, (_, calibration, seconds) in found.items():
        parts = [f"- {name}: temperature {calibration.temperature:.2f}"]
        for split, found_split in calibration.metrics.items():
            before, after = found_split["before"], found_split["after"]
            parts.append(
                f"{split} ({before['count']} images, accuracy {before['accuracy']:.1%}): ECE "
                f"{before['ece']:.3f} -> {after['ece']:.3f}, NLL {before['nll']:.3f} -> "
                f"{after['nll']:.3f}"
            )
        lines.append("; ".join(parts) + f" (training took {seconds:.0f} s).")
    return "\n".join(lines)


def plot_scores(rows: dict, path: Path) -> None:
    from catdog.report._figures import figure, finish

    fig = figure(3.2 * len(rows), 3.0)
    for ax, (method, row) in zip(fig.subplots(1, len(rows)), rows.items(), strict=True):
        both = np.concatenate([row["inside"], row["outside"]])
        bins = np.linspace(both.min(), both.max(), 30)
        ax.hist(row["inside"], bins, alpha=0.6, label="test (cats, dogs)")
        ax.hist(row["outside"], bins, alpha=0.6, label="held-out kind")
        ax.axvline(row["threshold"], color="k", linestyle="--", label="threshold (99%)")
        ax.set(title=f"{method}: AUROC {row['auroc']:.2f}", xlabel="score")
    ax.legend(fontsize=7)
    finish(fig, path)


def main() -> None:
    from catdog import from_directory
    from catdog.data.images import load_images
    from catdog.data.synthetic import make_synthetic_dataset, make_unknown_images
    from catdog.io import write_text
    from catdog.report.reliability import plot_reliability, plot_risk_coverage, risk_coverage

    with tempfile.TemporaryDirectory(prefix="catdog-ood-") as tmp:
        root = make_synthetic_dataset(Path(tmp) / "data", 300, (SIZE, SIZE), seed=0)
        splits = from_directory(root, image_size=(SIZE, SIZE), batch_size=32, seed=1337)
        other = load_images(make_unknown_images(Path(tmp) / "other", 200, (SIZE, SIZE), 1),
                            (SIZE, SIZE))  # fmt: skip
        start = time.perf_counter()
        models = build_models(splits, Path(tmp))
        seconds = (time.perf_counter() - start) / len(models)
        found = {name: (*compare(model, splits, other), seconds) for name, model in models.items()}
    images, generated = ROOT / "docs" / "images", ROOT / "docs" / "generated"
    write_text(generated / "ood_comparison.md", table(found) + "\n")
    rows, calibration, _ = found[list(found)[-1]]  # the transfer model: it makes mistakes
    before, after, labels = (np.concatenate(parts) for parts in zip(
        calibration.probabilities["validation"], calibration.probabilities["test"], strict=True
    ))  # fmt: skip
    plot_reliability(before, after, labels, path=images / "reliability.png")
    curves = {m: risk_coverage(r["correct"], r["inside"]) for m, r in rows.items()}
    plot_risk_coverage(curves, path=images / "risk_coverage.png")
    plot_scores(rows, images / "ood_scores.png")
    print(table(found))


if __name__ == "__main__":
    sys.exit(main())
