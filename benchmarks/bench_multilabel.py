"""Real photos, several answers: catdog's multi-label loop on collages of real photos.

Not run in CI: it needs the real `cats_and_dogs_filtered` photos, foreign photos (pandas and
horses) and the real pretrained MobileNetV2 base (see benchmarks/README.md, "Real photos").

    python benchmarks/bench_multilabel.py --data cats_and_dogs_filtered \\
        --foreign foreign/datasets/animals/panda foreign/weizmann_horse_db/rgb \\
        --weights mobilenet_v2_160_base.weights.h5

No public set of photos labelled "cat and dog in one picture" is at hand, so the multi-label
set is composed from single-label photos, in a temporary folder: side-by-side collages (two
photos, each resized to 160x160, pasted into one 320x160 image, the panels in a seeded random
order) of seven kinds, balanced:

- `cat|dog` (labels cats;dogs), `cat|foreign` (cats), `dog|foreign` (dogs),
  `foreign|foreign` (no label): collages;
- `cat`, `dog`, `foreign`: one photo alone (cats; dogs; no label).

The one-label and no-label collages and the single photos are there so that "two panels" does
not mean "two labels". The sources are split before anything is composed: training and
validation collages come from `train/` photos and a seeded 60% of the foreign photos, their
source photos split 80/20 between the two (the validation collages, on which the class
thresholds are fitted, share no photo with the training ones); the test collages come only from
`validation/` photos and the other 40% of the foreign photos. No photo is used in two splits;
within the training or the validation split a foreign photo may appear twice (there are too few
of them for every kind), never in two splits.

The loop is the library's: the labels file read by `read_label_table`, the chosen split given to
`splits_from_lists`, `build_model("transfer", multi_label=True)` on the real base at 160x160
(a collage is squeezed to 160x160 at the model's input), `train(..., cache_features=True,
early_stopping=3)`, `set_class_thresholds(model, splits, "f1")` on the validation split,
`evaluate_multilabel` on the test split; exact match per kind is counted from the same test
probabilities at the model's thresholds, with 95% Wilson intervals. Results:
benchmarks/results/multilabel.json (and printed).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

from _common import add_results_arguments, write_results  # noqa: E402

PANEL = 160  # each photo is resized to PANEL x PANEL; a collage is 2*PANEL x PANEL
KINDS = {  # kind: (panels, labels)
    "cat|dog": (("cat", "dog"), ("cats", "dogs")),
    "cat|foreign": (("cat", "foreign"), ("cats",)),
    "dog|foreign": (("dog", "foreign"), ("dogs",)),
    "foreign|foreign": (("foreign", "foreign"), ()),
    "cat": (("cat",), ("cats",)),
    "dog": (("dog",), ("dogs",)),
    "foreign": (("foreign",), ()),
}
SPLITS = ("train", "validation", "test")
FOREIGN_TRAIN_SHARE = 0.6  # of the foreign photos: training + validation; the rest: test
VALIDATION_SHARE = 0.2  # of the training-side source photos: the validation collages'


class Pool:
    """Source photos of one kind for one split, drawn in a seeded order; reshuffled (so reused
    within this split only) when all have been drawn."""

    def __init__(self, paths: list[Path], rng: random.Random):
        self.paths, self.rng, self.order, self.drawn = list(paths), rng, [], 0

    def draw(self) -> Path:
        if not self.order:
            self.order = self.rng.sample(self.paths, len(self.paths))
        self.drawn += 1
        return self.order.pop()


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _cut(paths: list[Path], share: float, rng: random.Random) -> tuple[list[Path], list[Path]]:
    """A seeded split of ``paths``: ``(1 - share, share)``."""
    shuffled = rng.sample(paths, len(paths))
    cut = round(len(shuffled) * (1 - share))
    return shuffled[:cut], shuffled[cut:]


def source_pools(data: Path, foreign: list[Path], seed: int) -> dict[str, dict[str, Pool]]:
    """``{split: {"cat" | "dog" | "foreign": Pool}}``, no photo in two splits."""
    rng = random.Random(seed)
    foreign_all = sorted(p for folder in foreign for p in _photos(folder))
    foreign_fit, foreign_test = _cut(foreign_all, 1 - FOREIGN_TRAIN_SHARE, rng)
    sources = {"test": {"foreign": foreign_test}, "train": {}, "validation": {}}
    fit = {"cat": _photos(data / "train" / "cats"), "dog": _photos(data / "train" / "dogs")}
    fit["foreign"] = foreign_fit
    for kind, paths in fit.items():
        sources["train"][kind], sources["validation"][kind] = _cut(paths, VALIDATION_SHARE, rng)
    sources["test"]["cat"] = _photos(data / "validation" / "cats")
    sources["test"]["dog"] = _photos(data / "validation" / "dogs")
    every = [p for split in sources.values() for paths in split.values() for p in set(paths)]
    assert len(every) == len(set(every)), "a source photo in two splits"
    return {s: {k: Pool(v, rng) for k, v in sources[s].items()} for s in SPLITS}


def compose(panels: list[Path], out: Path, rng: random.Random) -> None:
    """One image: a photo alone at PANEL x PANEL, or two side by side in a random order."""
    from PIL import Image

    rng.shuffle(panels)
    canvas = Image.new("RGB", (PANEL * len(panels), PANEL))
    for i, path in enumerate(panels):
        with Image.open(path) as photo:
            canvas.paste(photo.convert("RGB").resize((PANEL, PANEL)), (i * PANEL, 0))
    canvas.save(out, quality=92)


def build_set(root: Path, pools: dict, per_kind: dict[str, int], seed: int) -> tuple:
    """Write every split's images under ``root/<split>/`` and ``root/labels.csv``; return the
    labels file and ``{image path: kind}``."""
    rng = random.Random(seed + 1)
    kinds, rows = {}, []
    for split in SPLITS:
        (root / split).mkdir(parents=True)
        for kind, (panels, labels) in KINDS.items():
            for i in range(per_kind[split]):
                out = root / split / f"{kind.replace('|', '-')}_{i:04d}.jpg"
                compose([pools[split][p].draw() for p in panels], out, rng)
                kinds[out.name] = kind
                rows.append((str(out.resolve()), ";".join(labels)))
    labels_file = root / "labels.csv"
    with labels_file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("path", "labels"))
        writer.writerows(rows)
    return labels_file, kinds


def _interval(pair) -> list[float] | None:
    return None if pair is None else [round(float(x), 4) for x in pair]


def per_kind_exact_match(model, splits, kinds: dict[str, str]) -> dict[str, dict]:
    """Exact match of the test images per kind, at the model's thresholds, with intervals."""
    import numpy as np

    from catdog.report.intervals import wilson_interval
    from catdog.report.multilabel_evaluation import model_thresholds, probabilities_and_targets

    probs, targets = probabilities_and_targets(model, splits.test)
    assert np.array_equal(targets, splits.multi_hot("test")), "test order differs"
    exact = np.all((probs >= np.asarray(model_thresholds(model))) == (targets > 0.5), axis=1)
    found = {}
    for kind in KINDS:
        picked = [i for i, f in enumerate(splits.files["test"]) if kinds[Path(f).name] == kind]
        right = int(exact[picked].sum())
        found[kind] = {
            "correct": right,
            "total": len(picked),
            "exact_match": right / len(picked),
            "interval": _interval(wilson_interval(right, len(picked))),
        }
    return found


def rows_of(scores: dict, kinds: dict) -> list[dict]:
    """One row per class (AP, precision, recall, F1 with intervals), one per kind."""
    rows = []
    for name, got in zip(scores["class_names"], scores["per_class"], strict=True):
        row = {"row": f"class {name}", "kind": "class", "name": name}
        for key in ("ap", "precision", "recall", "f1"):
            row[key], row[f"{key}_interval"] = got[key], _interval(got[f"{key}_interval"])
        row.update({k: got[k] for k in ("support", "tp", "fp", "fn")})
        rows.append(row)
    for kind, got in kinds.items():
        labels = KINDS[kind][1]
        shape = "collage" if len(KINDS[kind][0]) == 2 else "single photo"
        rows.append({"row": f"{shape} {kind}", "kind": "images", "name": kind,
                     "labels": ";".join(labels) or "(none)", **got})  # fmt: skip
    return rows


def extras_of(scores: dict, thresholds, splits, per_kind: dict, pools: dict) -> dict:
    """The run's figures that are not rows: overall scores, thresholds, counts."""
    used = {s: {k: pool.drawn for k, pool in pools[s].items()} for s in SPLITS}
    sources = {s: {k: len(pool.paths) for k, pool in pools[s].items()} for s in SPLITS}
    return {
        "class_names": scores["class_names"],
        "thresholds": [round(t, 4) for t in thresholds],
        "map": scores["map"], "map_interval": _interval(scores["map_interval"]),
        "micro_f1": scores["micro"]["f1"],
        "micro_f1_interval": _interval(scores["micro"]["f1_interval"]),
        "macro_f1": scores["macro"]["f1"],
        "macro_f1_interval": _interval(scores["macro"]["f1_interval"]),
        "exact_match": scores["exact_match"],
        "exact_match_interval": _interval(scores["exact_match_interval"]),
        "hamming_loss": scores["hamming_loss"],
        "images": {s: len(splits.files[s]) for s in SPLITS},
        "images_per_kind": per_kind,
        "source_photos": sources, "panels_drawn": used,
    }  # fmt: skip


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    from catdog.data.label_table import read_label_table
    from catdog.data.multilabel import splits_from_lists
    from catdog.models.registry import build_model
    from catdog.report.multilabel_evaluation import evaluate_multilabel
    from catdog.training.class_thresholds import set_class_thresholds
    from catdog.training.fit import train

    start = time.perf_counter()
    per_kind = dict(zip(SPLITS, args.per_kind, strict=True))
    pools = source_pools(args.data, args.foreign, args.seed)
    with tempfile.TemporaryDirectory(prefix="catdog-multilabel-") as tmp:
        labels_file, kinds = build_set(Path(tmp), pools, per_kind, args.seed)
        composed = time.perf_counter()
        table = read_label_table(labels_file)
        chosen = {s: [p for p in table.rows if Path(p).parent.name == s] for s in SPLITS}
        splits = splits_from_lists(
            table, chosen, image_size=(PANEL, PANEL), batch_size=32, seed=args.seed
        )
        model = build_model(
            "transfer", multi_label=True, weights=str(args.weights),
            input_shape=(PANEL, PANEL, 3), class_names=table.class_names,
        )  # fmt: skip
        history = train(
            model, splits, epochs=args.epochs, cache_features=True, early_stopping=3, verbose=0
        )
        thresholds = set_class_thresholds(model, splits, "f1")
        scores = evaluate_multilabel(model, splits)
        by_kind = per_kind_exact_match(model, splits, kinds)
    seconds = time.perf_counter() - start
    extras = extras_of(scores, thresholds, splits, per_kind, pools)
    extras["epochs_trained"] = len(history.history.get("loss", []))
    extras["seconds"], extras["seconds_composing"] = round(seconds, 1), round(composed - start, 1)
    return rows_of(scores, by_kind), extras


def print_summary(rows: list[dict], extras: dict) -> None:
    for row in rows:
        if row["kind"] == "class":
            figures = ", ".join(f"{k} {row[k]:.3f}" for k in ("precision", "recall", "f1"))
            print(f"{row['row']}: AP {row['ap']:.3f} {row['ap_interval']}, {figures}")
        else:
            share = f"{row['correct']}/{row['total']} = {row['exact_match']:.1%}"
            print(f"{row['row']} ({row['labels']}): exact match {share} {row['interval']}")
    exact = f"{extras['exact_match']:.1%} {extras['exact_match_interval']}"
    print(
        f"mAP {extras['map']:.3f} {extras['map_interval']}; exact match {exact}; thresholds "
        f"{extras['thresholds']}; {extras['epochs_trained']} epochs; {extras['seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/cats_and_dogs_filtered"))
    parser.add_argument(
        "--foreign", type=Path, nargs="+",
        default=[Path("/work/data/foreign/datasets/animals/panda"),
                 Path("/work/data/foreign/weizmann_horse_db/rgb")],
    )  # fmt: skip
    parser.add_argument(
        "--weights", type=Path, default=Path("/work/data/mobilenet_v2_160_base.weights.h5")
    )
    parser.add_argument(
        "--per-kind", type=int, nargs=3, default=(170, 40, 85),
        metavar=("TRAIN", "VALIDATION", "TEST"), help="images of each of the 7 kinds per split",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    add_results_arguments(parser, "multilabel")
    args = parser.parse_args(argv)
    rows, extras = run(args)
    print_summary(rows, extras)
    write_results(
        args,
        "Multi-label on collages of real photos (transfer, MobileNetV2 160, cached features)",
        rows,
        notes="Exact match: the image's shown classes are exactly its true ones (none for a "
        "no-label image); 95% Wilson intervals, per class bootstrap intervals for AP and F1.",
        extras=extras,
    )


if __name__ == "__main__":
    main()
