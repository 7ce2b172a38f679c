"""Make every benchmark table in the docs from the results files in benchmarks/results/.

    python benchmarks/render.py           # rewrite every marked block
    python benchmarks/render.py --check   # list the blocks that differ; exit 1 if any

A page asks for a table with a marked block; the lines between the two markers belong to this
script and are rewritten from ``benchmarks/results/<name>.json`` (``summary`` combines several
files)::

    <!-- results: inference -->
    <!-- /results -->

Pages: README.md, every ``.md`` under docs/, and benchmarks/README.md. tests/test_figures.py
fails when a block differs from what this script makes, so a figure changed in a results file
without rerunning this script fails a test. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- results: ([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)
NOISE = (
    "Timings vary from run to run{example}: only ratios within one run are comparable, not "
    "times across runs."
)
SCRIPTS = {
    "whole_job": "bench_real.py",
    "training_1000": "bench_training.py",
    "training_1000_all": "bench_training.py",
}  # otherwise bench_<name>.py


def noise(results: Path = RESULTS) -> str:
    """The warning under every table, with the two runs of one configuration that show it."""
    runs = [load(name, results) for name in ("training_1000_all", "training_1000")]
    if None in runs:
        return NOISE.format(example="")
    (first, second), (one, two) = runs, [_row(run, "a") for run in runs]
    example = (
        f" (the tutorial's recipe on the same {first['settings']['images']:,} images took "
        f"{one['seconds']:.0f} s on {first['date']} and {two['seconds']:.0f} s on "
        f"{second['date']}, on the same kind of shared 2-core machine)"
    )
    return NOISE.format(example=example)


def _ms(value):
    return f"{value:.1f} ms"


def _tested(row):
    return f"{row['correct']}/{row['total']} = {row['accuracy']:.1%}"


def _interval(row):
    if "interval" not in row:
        return None
    low, high = row["interval"]
    return f"{low:.1%}-{high:.1%}"


def _scored(row):
    return _tested(row) if "correct" in row else None


def _phases(row):
    """Where a run's time went, its four largest phases; the floor's two parts."""
    if row.get("key") == "floor":
        decoded, base = row["listing_and_decoding"], row["base"]
        return f"listing + decoding {decoded:.1f} s, the base {base:.1f} s"
    timings = row.get("timings")
    if not timings:
        return None
    shown = sorted(((k, v) for k, v in timings.items() if k != "total"), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.1f} s" for k, v in shown[:4])


def _unknown(rule: str, split: str):
    """A share answered unknown under one threshold rule, with its 95% interval."""

    def cell(row):
        got = row["rules"][rule].get(split)
        if got is None:
            return None
        low, high = got["interval"]
        return f"{got['share']:.1%} ({low:.1%}-{high:.1%})"

    return cell


def _median(row):
    """A row's median: seconds for a new process, milliseconds for the in-process rows."""
    if "median_s" in row:
        return f"{row['median_s']:.2f} s"
    return f"{row['median_ms']:.1f} ms"


def _share(row):
    low, high = row["interval"]
    return f"{row['share']:.1%} ({low:.1%}-{high:.1%})"


def _auroc(split: str):
    return lambda row: row["auroc"].get(split)


def _spread(got: dict) -> str:
    """A mean accuracy and its interval: ``95.9% (93.1-97.2)``."""
    return f"{got['mean']:.1%} ({100 * got['low']:.1f}-{100 * got['high']:.1f})"


def _accuracy(method: str):
    """One few-shot method's accuracy, with its interval."""
    return lambda row: _spread(row[method])


def _with_interval(key: str):
    """A figure with its 95% interval: ``0.912 (0.871-0.948)``; empty when the row has none."""

    def cell(row):
        if row.get(key) is None:
            return None
        low, high = row[f"{key}_interval"] or (None, None)
        shown = f"{row[key]:.3f}"
        return shown if low is None else f"{shown} ({low:.3f}-{high:.3f})"

    return cell


def _escaped(key: str):
    """A text cell with its ``|`` escaped (kinds such as ``cat|dog``)."""
    return lambda row: row[key].replace("|", "\\|")


def _exact(row):
    if "exact_match" not in row:
        return None
    low, high = row["interval"]
    return f"{row['correct']}/{row['total']} = {row['exact_match']:.1%} ({low:.1%}-{high:.1%})"


def _multilabel_summary(extras: dict) -> str:
    """The overall figures of bench_multilabel.py's run (its ``extras``)."""

    def ranged(key, percent=False):
        low, high = extras[f"{key}_interval"]
        if percent:
            return f"{extras[key]:.1%} ({low:.1%}-{high:.1%})"
        return f"{extras[key]:.3f} ({low:.3f}-{high:.3f})"

    images, per_kind = extras["images"], extras["images_per_kind"]
    thresholds = ", ".join(
        f"{n} {t:.3f}" for n, t in zip(extras["class_names"], extras["thresholds"], strict=True)
    )
    return (
        f"Overall, on the {images['test']:,} test images: mAP {ranged('map')}, micro F1 "
        f"{ranged('micro_f1')}, macro F1 {ranged('macro_f1')}, exact match "
        f"{ranged('exact_match', percent=True)}. Thresholds (fitted for F1 on the "
        f"{images['validation']:,} validation images): {thresholds}. Images: "
        f"{images['train']:,} training, {images['validation']:,} validation, "
        f"{images['test']:,} test ({per_kind['train']}, {per_kind['validation']} and "
        f"{per_kind['test']} of each of the seven kinds); {extras['epochs_trained']} epochs; "
        f"{extras['seconds']:.0f} s in all, composing the images included."
    )


_TRAINING = [
    ("path", "path", "{}"),
    ("wall time (s)", "seconds", "{:.0f}"),
    ("speed-up vs post", "speedup_vs_post", "{:.2f}x"),
    ("validation accuracy", "validation_accuracy", "{:.3f}"),
    ("held-out test accuracy", "test_accuracy", "{:.3f}"),
]
COLUMNS = {  # results file: (header, row key or function of the row, format)
    "inference": [
        ("path", "path", "{}"),
        ("batch-1 ms", "batch1_ms", "{:.1f}"),
        ("vs predict_on_batch", "batch1_vs_predict_on_batch", "{:.2f}x"),
        ("batch-32 img/s", "batch32_images_per_s", "{:.0f}"),
        ("vs predict_on_batch", "batch32_vs_predict_on_batch", "{:.2f}x"),
        ("file MB", "file_mb", "{:.2f}"),
        ("top-1 agreement", "top1_agreement", "{:.3f}"),
    ],
    "input_pipeline": [
        ("pipeline", "path", "{}"),
        ("first epoch images/s", "first_epoch_images_per_s", "{:.0f}"),
        ("later epochs images/s", "later_epochs_images_per_s", "{:.0f}"),
    ],
    "training": _TRAINING,
    "training_1000": _TRAINING,
    "training_1000_all": _TRAINING,
    "backbones": [
        ("backbone", "backbone", "`{}`"),
        ("input", "input", "{}"),
        ("parameters", "parameters_millions", "{:.1f}M"),
        ("features/s (batch 32)", "features_per_s", "{:.0f}"),
        ("Predictor batch 1 (ms)", "predictor_ms", "{:.1f}"),
        ("predict_on_batch batch 1 (ms)", "predict_on_batch_ms", "{:.1f}"),
        ("ratio", "ratio", "{:.2f}x"),
        ("ImageNet top-1 (%)", "imagenet_top1", "{:.1f}"),
    ],
    "distributed": [
        ("path", "path", "{}"),
        ("fit seconds", "fit_seconds", "{:.1f}"),
        ("train images/s", "train_images_per_s", "{:.0f}"),
        ("vs (a)", "vs_a", "{:.2f}x"),
        ("last val accuracy", "last_val_accuracy", "{:.3f}"),
    ],
    "predict": [
        ("path", "path", "{}"),
        ("images", "images", "{:,}"),
        ("images/s", "images_per_s", "{:.0f}"),
        ("engine / this", "engine_vs_this", "{:.2f}x"),
        ("wall time (s)", "seconds", "{:.1f}"),
        ("peak memory (MB)", "peak_rss_mb", "{:,}"),
    ],
    "distributed_predict": [
        ("path", "path", "{}"),
        ("images", "images", "{:,}"),
        ("wall time (s)", "seconds", "{:.1f}"),
        ("images/s", "images_per_s", "{:.0f}"),
        ("vs 1 worker", "vs_one_worker", "{:.2f}x"),
        ("images/s once running", "images_per_s_running", "{:.0f}"),
    ],
    "one_photo": [
        ("path", "path", "{}"),
        ("runs", "runs", "{}"),
        ("median", _median, "{}"),
        ("min", "min_s", "{:.2f} s"),
        ("max", "max_s", "{:.2f} s"),
    ],
    "audit": [
        ("path", "path", "{}"),
        ("time (s)", "seconds", "{:.0f}"),
        ("vs training", "vs_train", "{:.2f}x"),
    ],
    "audit_faults": [
        ("fault", "fault", "{}"),
        ("case", "case", "{}"),
        ("recall", "recall", "{:.1%}"),
        ("lowest draw", "recall_min", "{:.1%}"),
        ("precision", "precision", "{:.1%}"),
        ("flagged", "flagged", "{:.0f}"),
        ("goal", "goal", "{}"),
    ],
    "unknown": [
        ("score", "key", "`{}`"),
        ("AUROC pandas", _auroc("pandas"), "{:.4f}"),
        ("AUROC horses", _auroc("horses"), "{:.4f}"),
        ("held-out unknown, (c)", _unknown("c_conformal_oof2000", "heldout"), "{}"),
        ("pandas unknown, (c)", _unknown("c_conformal_oof2000", "pandas"), "{}"),
        ("horses unknown, (c)", _unknown("c_conformal_oof2000", "horses"), "{}"),
        ("held-out unknown, (b)", _unknown("b_conformal_val200", "heldout"), "{}"),
    ],
    "unknown_run": [
        ("photos", "set", "{}"),
        ("count", "photos", "{}"),
        ("answered unknown", _share, "{}"),
    ],
    "fewshot": [
        ("photos per class", "shots", "{}"),
        ("draws", "draws", "{}"),
        ("(a) prototypes", _accuracy("prototype"), "{}"),
        ("(b) centred prototypes", _accuracy("prototype_centred"), "{}"),
        ("(b') centred on the pool's mean", _accuracy("prototype_centred_pool"), "{}"),
        ("(c) k-NN vote", _accuracy("knn"), "{}"),
        ("(d) logistic regression", _accuracy("logistic"), "{}"),
    ],
    "whole_job": [
        ("row", "name", "{}"),
        ("time (s)", "seconds", "{:.0f}"),
        ("x the floor", "times_floor", "{:.2f}"),
        ("speed-up vs tutorial", "speedup_vs_tutorial", "{:.2f}x"),
        ("test accuracy", _scored, "{}"),
        ("95% interval", _interval, "{}"),
        ("where the time went (largest phases)", _phases, "{}"),
    ],
    "multilabel": [
        ("test images", _escaped("row"), "{}"),
        ("labels", "labels", "{}"),
        ("AP", _with_interval("ap"), "{}"),
        ("precision", _with_interval("precision"), "{}"),
        ("recall", _with_interval("recall"), "{}"),
        ("F1", _with_interval("f1"), "{}"),
        ("exact match", _exact, "{}"),
    ],
    "real": [
        ("row", "name", "{}"),
        ("time (s)", "seconds", "{:.0f}"),
        ("speed-up vs tutorial", "speedup_vs_tutorial", "{:.2f}x"),
        ("test accuracy", _tested, "{}"),
        ("95% interval", _interval, "{}"),
        ("epochs trained", "epochs_trained", "{}"),
    ],
}


def load(name: str, results: Path = RESULTS) -> dict | None:
    """The results file ``<name>.json``, or None when that benchmark has not been run."""
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cell(row: dict, key, fmt: str) -> str:
    value = key(row) if callable(key) else row.get(key)
    return "" if value is None else fmt.format(value)


def run_line(name: str, data: dict) -> str:
    """Title, date, machine, command and file of one run."""
    versions = data.get("versions", {})
    known = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    unknown = [k for k, v in versions.items() if not v]
    if unknown:
        known += f"; {', '.join(unknown)} versions not recorded"
    command = data.get("command") or f"python benchmarks/{_script(name)}"
    return (
        f"**{data.get('title', name)}.** Run of {data['date']} on {data['machine']}"
        f" ({known}): `{command}`, results in `benchmarks/results/{name}.json`."
    )


def _script(name: str) -> str:
    return SCRIPTS.get(name, f"bench_{name}.py")


def render_table(name: str, results: Path = RESULTS) -> str:
    """The block for one results file: its run, its table, its notes and the noise warning."""
    data = load(name, results)
    if data is None:
        return (
            f"Not run yet: `python benchmarks/{_script(name)}` writes "
            f"`benchmarks/results/{name}.json` (see its docstring), then "
            "`python benchmarks/render.py` makes this table."
        )
    columns = COLUMNS[name]
    rows = [[_cell(row, key, fmt) for _, key, fmt in columns] for row in data["rows"]]
    if name == "audit":  # what it flagged
        flagged = data["extras"]["flagged"]
        rows.append(
            ["flagged", ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in flagged.items()), ""]
        )
    if name == "input_pipeline":  # catdog / post, from unrounded figures
        first, later = data["extras"]["first_epoch_ratio"], data["extras"]["later_epochs_ratio"]
        rows.append(["ratio", f"{first:.2f}x", f"{later:.2f}x"])
    parts = [run_line(name, data), "\n".join(table([c[0] for c in columns], rows))]
    parts += [data["notes"]] if data.get("notes") else []
    if name == "multilabel":  # the overall figures, from the same run
        parts.append(_multilabel_summary(data["extras"]))
    if name == "fewshot":  # the goal, from the same run
        parts.append(_fewshot_goal(data["extras"]["goal"]))
    return "\n\n".join([*parts, noise(results)])


def _row(data: dict, key: str) -> dict:
    for row in data["rows"]:
        if key in (row.get("key"), row.get("path")):
            return row
    raise SystemExit(f"render: the summary needs the row {key!r} of {data['benchmark']}.json")


def _summary_rows(pipeline: dict, training: dict, real: dict, inference: dict) -> list:
    post, piped = pipeline["rows"]
    a, c, c2 = (_row(training, k) for k in ("a", "c", "c2"))
    tutorial, ours, photos = _row(real, "tutorial"), _row(real, "cached"), real["extras"]["photos"]
    floor = _row(real, "floor")
    keras, tf_engine, lite = (
        _row(inference, k)
        for k in ("model.predict_on_batch", "catdog TensorFlow engine", "catdog LiteRT engine")
    )
    plain = _row(inference, "model.predict")
    images = training["settings"]["images"]
    return [
        ["input pipeline, later epochs (images/s)", f"{post['later_epochs_images_per_s']:,.0f}",
         f"{piped['later_epochs_images_per_s']:,.0f}",
         f"{pipeline['extras']['later_epochs_ratio']:.2f}x", pipeline["date"]],
        ["input pipeline, first epoch (images/s)", f"{post['first_epoch_images_per_s']:,.0f}",
         f"{piped['first_epoch_images_per_s']:,.0f} (includes the decoding pass)",
         f"{pipeline['extras']['first_epoch_ratio']:.2f}x", pipeline["date"]],
        [f"model D, {images:,} images, {training['settings']['epochs']} epochs (wall time)",
         f"{a['seconds']:.0f} s", f"{c['seconds']:.0f} s cached features; {c2['seconds']:.0f} s"
         " with 2 augmented copies", f"{c['speedup_vs_post']:.2f}x, "
         f"{c2['speedup_vs_post']:.2f}x", training["date"]],
        [f"the whole `catdog train` job with its defaults, real photos ({photos['train']:,} "
         f"training, {photos['test']:,} held out; wall time, held-out accuracy; the recipe: 10 "
         "epochs)", f"{tutorial['seconds']:.0f} s, {tutorial['accuracy']:.1%}",
         f"{ours['seconds']:.0f} s, {ours['accuracy']:.1%} ({ours['times_floor']:.2f}x the "
         f"floor: {floor['seconds']:.0f} s to decode every photo and run the base once)",
         f"{ours['speedup_vs_tutorial']:.2f}x", real["date"]],
        ["one image, 160x160 (latency)", f"{_ms(keras['batch1_ms'])} (`predict_on_batch`; "
         f"`model.predict` {_ms(plain['batch1_ms'])})", f"{_ms(tf_engine['batch1_ms'])} "
         f"TensorFlow engine, {_ms(lite['batch1_ms'])} LiteRT engine",
         f"{tf_engine['batch1_vs_predict_on_batch']:.2f}x, "
         f"{lite['batch1_vs_predict_on_batch']:.2f}x", inference["date"]],
        ["batches of 32 (images/s)", f"{keras['batch32_images_per_s']:.0f}",
         f"{tf_engine['batch32_images_per_s']:.0f} TensorFlow engine, "
         f"{lite['batch32_images_per_s']:.0f} LiteRT engine",
         f"{tf_engine['batch32_vs_predict_on_batch']:.2f}x, "
         f"{lite['batch32_vs_predict_on_batch']:.2f}x", inference["date"]],
    ]  # fmt: skip


def render_summary(results: Path = RESULTS) -> str:
    """catdog against the tutorial's recipe, one row per benchmark, each row from one run."""
    names = ("input_pipeline", "training", "whole_job", "inference")
    files = [load(name, results) for name in names]
    if None in files:
        missing = names[files.index(None)]
        raise SystemExit(f"render: the summary needs benchmarks/results/{missing}.json")
    header = ["what", "tutorial's recipe", "catdog", "ratio", "run"]
    machines = sorted({f["machine"] for f in files})
    return "\n\n".join(
        [
            "\n".join(table(header, _summary_rows(*files))),
            "Each row's figures and ratio come from one run of one benchmark (`benchmarks/"
            "results/`: input_pipeline, training, whole_job, inference), on "
            f"{'; '.join(machines)}; the tables on the benchmarks page give every path.",
            noise(results),
        ]
    )


def render_knn_cost(results: Path = RESULTS) -> str:
    """What the k-NN score of the unknown answer costs in LiteRT (``extras.knn_cost`` of
    unknown.json): its file size and time per call at batch 1 and 32, bank in float32 and
    float16."""
    data = load("unknown", results)
    if data is None:
        return render_table("unknown", results)  # its "not run yet" line
    cost = data["extras"]["knn_cost"]
    rows = [
        [
            f"bank in {kind}",
            f"{cost[f'litert_{kind}_file_bytes'] / 1e6:.1f}",
            f"{cost[f'litert_{kind}_batch1_ms']:.2f}",
            f"{cost[f'litert_{kind}_batch32_ms']:.2f}",
            f"{cost[f'litert_{kind}_batch32_ms'] / 32:.3f}",
            f"{max(cost[f'litert_{kind}_batch{b}_max_abs_diff_vs_keras'] for b in (1, 32)):.0e}",
        ]
        for kind in ("float32", "float16")
    ]
    header = ["k-NN score alone, LiteRT", "file MB", "batch 1 (ms)", "batch 32 (ms)",
              "per image at batch 32 (ms)", "largest difference from Keras"]  # fmt: skip
    count, width = cost["bank_shape"]
    note = f"A bank of {count:,} embeddings of {width:,} values, k = 10 (top_k in the model)."
    return "\n\n".join([run_line("unknown", data), "\n".join(table(header, rows)), note,
                         noise(results)])  # fmt: skip


def _fewshot_goal(goal: dict) -> str:
    met = "met" if goal["met_on_average"] else "not met"
    return (
        f"Goal: from {goal['shots']} photos per class, within {goal['points']:g} points of the "
        f"best accuracy with every label ({goal['every_label_method']}, "
        f"{goal['every_label_best']:.1%}). The best method at {goal['shots']} photos per class, "
        f"{goal['few_shot_method']}, is {goal['gap_points']:.1f} points below it on average: "
        f"{met} on average; {goal['draws_within']:.0%} of its draws are within "
        f"{goal['points']:g} points, and its 2.5% draw reaches {goal['few_shot_low']:.1%}."
    )


def render_fewshot_loop(results: Path = RESULTS) -> str:
    """The simulated labelling loop of bench_fewshot.py (``extras.loop`` of fewshot.json):
    held-out accuracy after some rounds, per pool, rule and strategy, and the share of the
    photos shown that were foreign."""
    data = load("fewshot", results)
    if data is None:
        return render_table("fewshot", results)  # its "not run yet" line
    loop = data["extras"]["loop"]
    picked = (0, 1, 2, 5, loop["rounds"])
    models = {"prototype_centred": "centred prototypes", "logistic": "logistic head"}
    rows = []
    for config in loop["configs"]:
        cells = [_spread(config["rounds"][r]) for r in picked]
        share = config["foreign_share"]
        foreign = f"{share['mean']:.0%} ({share['low']:.0%}-{share['high']:.0%})"
        rows.append([config["pool"], models.get(config["model"], config["model"]),
                     config["rule"].replace("_", " "), config["strategy"].replace("_", " + "),
                     *cells, foreign if config["foreign"] else ""])  # fmt: skip
    shown = [loop["configs"][0]["rounds"][r]["shown"] for r in picked]
    header = ["pool", "model", "rule", "strategy", *(f"{n} shown" for n in shown),
              f"{loop['foreign_set']} among the shown"]  # fmt: skip
    flagged = "; ".join(
        f"{pool}: " + ", ".join(f"{share:.1%} of the {kind}" for kind, share in got.items())
        for pool, got in loop["outlier_rule_flags"].items()
    )
    note = (
        f"Held-out accuracy (mean and 2.5-97.5% over {loop['seeds']} seeds) after 0, 1, 2, 5 "
        f"and {loop['rounds']} rounds: {loop['start_per_class']} random photos per class to "
        f"start, then {loop['batch']} photos shown per round (uncertainty + diversity: "
        f"farthest-point among the {loop['candidates']} most uncertain). The audit's rule "
        f"`outliers` flagged {flagged}. The centred prototypes' fitted temperatures: median "
        f"{loop['temperature']['median']:.3f} (10-90%: {loop['temperature']['p10']:.3f}-"
        f"{loop['temperature']['p90']:.3f})."
    )
    return "\n\n".join([run_line("fewshot", data), "\n".join(table(header, rows)), note,
                         noise(results)])  # fmt: skip


def render(name: str, results: Path = RESULTS) -> str:
    """The markdown of the block ``<!-- results: NAME -->``."""
    if name == "summary":
        return render_summary(results)
    if name == "unknown_cost":
        return render_knn_cost(results)
    if name == "fewshot_loop":
        return render_fewshot_loop(results)
    if name not in COLUMNS:
        raise SystemExit(f"render: no results table named {name!r}; names: summary, unknown_cost, "
                         f"fewshot_loop, {', '.join(COLUMNS)}")  # fmt: skip
    return render_table(name, results)


def pages(root: Path = ROOT) -> list[Path]:
    """Every page that may hold a marked block."""
    docs = sorted((root / "docs").rglob("*.md"))
    return [root / "README.md", *docs, root / "benchmarks" / "README.md"]


def rewrite(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked block made from the results files."""
    return BLOCK.sub(lambda m: f"{m[1]}{render(m[2], results)}\n{m[4]}", text)


def stale(root: Path = ROOT, results: Path = RESULTS) -> list[str]:
    """The blocks (``page: name``) that differ from what the results files make."""
    found = []
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if match[3] != render(match[2], results) + "\n":
                found.append(f"{page.relative_to(root)}: {match[2]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale blocks; rewrite none")
    args = parser.parse_args()
    if args.check:
        found = stale()
        print("\n".join(f"stale: {block}" for block in found) or "every block is up to date")
        sys.exit(1 if found else 0)
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = rewrite(text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
