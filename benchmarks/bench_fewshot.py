"""From a few labelled photos to a model: which few-shot classifier, and which photos to label.

Not run in CI: like bench_unknown.py it needs the real `cats_and_dogs_filtered` photos and
foreign photos (here the 1,000 giant pandas), and reads their features from bench_unknown.py's
cache (the ImageNet MobileNetV2@160 base, average-pooled: the planned embedding). With the
cache filled by bench_unknown.py (or, without it, `--weights` to extract them):

    python benchmarks/bench_fewshot.py --data cats_and_dogs_filtered \
        --foreign pandas=animals/panda --cache features.npz

Protocol. The 1,999 photos of `train/` are the pool a user has, the 1,000 photos of
`validation/` the held-out photos every accuracy is measured on (they choose nothing). Every
classifier reads the unit embedding (L2-normalised); numpy and scikit-learn only.

1. Accuracy against labelled photos per class (1, 2, 5, 10, 20, 50, 100: DRAWS random draws
   of that many photos per class from the pool, the same draws for every method; mean and the
   2.5-97.5% percentiles over the draws, which say how much it matters which photos were
   labelled; "all": the 1,999 photos, one run, a 95% Wilson interval over the 1,000 held-out
   photos). Methods: (a) `prototype`: the mean of each class's unit embeddings, the nearest
   by cosine; (b) `prototype_centred`: the same after subtracting the mean unit embedding of
   every photo at hand, labelled or not (pool and held-out: 2,999 photos), and normalising
   again; (b') `prototype_centred_pool`: centred on the pool's mean alone (1,999 photos), what a
   saved model could keep for photos it has not seen; (c) `knn`: a vote of the k = min(5,
   shots) nearest labelled photos by cosine (ties to the larger summed similarity); (d)
   `logistic`: scikit-learn's logistic regression (C = 1, its default) on the unit embedding,
   approximately what catdog's cached-feature head is (a dense softmax head trained on cached
   features; catdog's pools by maximum and has a hidden layer and dropout). The goal: from 5
   photos per class, within GOAL_POINTS points of the best accuracy with every label.
2. Choosing which photos to label (active learning), simulated: a pool's true labels play the
   user. Each seed starts from START random photos per class, then ROUNDS rounds each show
   BATCH photos, chosen by: `random`; `uncertainty` (the smallest margin between the two largest
   probabilities of the classifier: a softmax of its cosine similarities over a temperature
   fitted on the labelled photos by leave-one-out likelihood; with two classes the ranking is
   the same at any temperature); `uncertainty_diversity` (of the CANDIDATES most uncertain,
   BATCH by farthest-point, k-center greedy, from the photos already shown); `diversity`
   (k-center greedy over the whole pool). The model being improved is (b), the winner of part
   1 from 1 to 50 photos per class; on the clean pool the loop runs with (d) too, to see how a
   trained head fares (its probabilities are scikit-learn's). Everything in the loop reads the
   embedding centred on the photos at hand. Pools: the 1,999 cats and dogs, then the same with
   the 1,000 pandas mixed in (a photo of neither class is shown, answered "none of these", and
   adds nothing to the classifier). Rules to keep foreign photos apart: `outliers` (the
   audit's: leave-one-out k-NN score, k = 10, over the labelled and pool photos, past the Tukey
   fence of those scores); `far` (the cosine distance to the nearest labelled photo past the
   largest such distance among the labelled photos themselves, leave-one-out);
   `none_of_these` (skip a photo whose nearest shown photo was answered "none of these");
   `far+none_of_these` (both). Per round: held-out accuracy over SEEDS seeds, mean and
   2.5-97.5% percentiles; per strategy and rule: the share of the shown photos that were
   pandas.

Results: benchmarks/results/fewshot.json (rows: part 1; extras: the loop), and the figures
docs/images/fewshot_accuracy.png and docs/images/fewshot_loop.png drawn from it
(`--figures-only` redraws them from the results file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _common import add_results_arguments, write_results  # noqa: E402
from bench_unknown import kth_largest, list_photos, load_features, parse_foreign, unit  # noqa: E402

SHOTS = (1, 2, 5, 10, 20, 50, 100)
DRAWS = 20
GOAL_SHOTS, GOAL_POINTS = 5, 3.0
START, BATCH, ROUNDS, CANDIDATES = 5, 20, 10, 100
SEEDS = 20
VOTE_K = 5
OUTLIER_K, FENCE = 10, 1.5  # the audit's outlier rule (catdog.training.audit_embedding)
TEMPERATURES = np.geomspace(0.005, 1.0, 41)
STRATEGIES = ("random", "uncertainty", "uncertainty_diversity", "diversity")
MODELS = ("prototype_centred", "logistic")  # the loop's: the few-shot winner, then the head
RULES = ("none", "outliers", "far", "none_of_these", "far+none_of_these")
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "images"
SEED = 0


# --------------------------------------------------------------------------- data
def load_data(args) -> dict:
    """Unit embeddings and labels of the pool, the held-out photos and the foreign photos."""
    foreign = parse_foreign(args.foreign)
    photos = list_photos(args.data)
    sets = load_features(args, photos, foreign)
    return {
        "pool": unit(sets["fit"]["gap"]),
        "pool_labels": photos["fit_labels"],
        "heldout": unit(sets["heldout"]["gap"]),
        "heldout_labels": photos["heldout_labels"],
        "foreign": unit(sets[next(iter(foreign))]["gap"]),
        "foreign_name": next(iter(foreign)),
    }


def centred(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Unit rows ``x`` minus ``mean``, normalised again."""
    return unit(x - mean)


# --------------------------------------------------------------------------- classifiers
def prototypes(x: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    """One unit prototype per class: the direction of the mean of its rows."""
    return unit(np.stack([x[y == c].mean(axis=0) for c in range(classes)]))


def nearest_prototype(x, y, test, classes: int) -> np.ndarray:
    return np.argmax(test @ prototypes(x, y, classes).T, axis=1)


def knn_vote(x, y, test, classes: int, k: int) -> np.ndarray:
    """The class most of the k nearest labelled rows have (cosine); ties to the larger sum of
    similarities (at most k, so 1e-3 of it never outweighs a vote)."""
    sims = test @ x.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    near, sim = y[top], np.take_along_axis(sims, top, axis=1)
    votes = np.stack(
        [
            np.sum(near == c, axis=1) + 1e-3 * np.sum(sim * (near == c), axis=1)
            for c in range(classes)
        ],
        axis=1,
    )
    return np.argmax(votes, axis=1)


def logistic(x, y, test) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(x, y).predict(test)


def methods(data: dict) -> dict:
    """``{name: predict(labelled indices, shots) -> held-out classes}`` for part 1."""
    pool, held, y = data["pool"], data["heldout"], data["pool_labels"]
    classes = int(y.max()) + 1
    at_hand = np.concatenate([pool, held]).mean(axis=0)
    pool_mean = pool.mean(axis=0)
    spaces = {
        "unit": (pool, held),
        "at_hand": (centred(pool, at_hand), centred(held, at_hand)),
        "pool": (centred(pool, pool_mean), centred(held, pool_mean)),
    }

    def prototype(space):
        x, test = spaces[space]
        return lambda i, shots: nearest_prototype(x[i], y[i], test, classes)

    return {
        "prototype": prototype("unit"),
        "prototype_centred": prototype("at_hand"),
        "prototype_centred_pool": prototype("pool"),
        "knn": lambda i, shots: knn_vote(pool[i], y[i], held, classes, min(VOTE_K, shots)),
        "logistic": lambda i, shots: logistic(pool[i], y[i], held),
    }


# --------------------------------------------------------------------------- part 1
def draw_per_class(labels: np.ndarray, count: int, rng) -> np.ndarray:
    """``count`` random indices of each class (labels below 0: no class)."""
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), count, replace=False)
            for c in np.unique(labels[labels >= 0])
        ]
    )


def spread(values) -> dict:
    """Mean and 2.5-97.5% percentiles of accuracies over draws or seeds."""
    values = np.asarray(values, float)
    return {
        "mean": float(values.mean()),
        "low": float(np.quantile(values, 0.025)),
        "high": float(np.quantile(values, 0.975)),
        "draws": len(values),
    }


def wilson(correct: int, total: int) -> dict:
    from catdog.report.evaluation import wilson_interval

    low, high = wilson_interval(correct, total)
    return {"mean": correct / total, "low": low, "high": high, "draws": 1, "interval": "wilson"}


def accuracy_vs_shots(data: dict, draws: int) -> tuple[list[dict], dict]:
    """One row per number of labelled photos per class: each method's accuracy; and each
    method's accuracy in every draw of GOAL_SHOTS photos per class."""
    predictors, y, truth = methods(data), data["pool_labels"], data["heldout_labels"]
    rng = np.random.default_rng(SEED)
    rows, at_goal = [], {}
    for shots in SHOTS:
        got: dict = {name: [] for name in predictors}
        for _ in range(draws):
            chosen = draw_per_class(y, shots, rng)
            for name, predict in predictors.items():
                got[name].append(np.mean(predict(chosen, shots) == truth))
        rows.append(
            {"shots": shots, "labelled": shots * len(np.unique(y)), "draws": draws}
            | {name: spread(values) for name, values in got.items()}
        )
        print(shots_line(rows[-1], predictors), flush=True)
        if shots == GOAL_SHOTS:
            at_goal = got
    everything = np.arange(len(y))
    rows.append(
        {"shots": "all", "labelled": len(y), "draws": 1}
        | {
            name: wilson(int(np.sum(predict(everything, len(y)) == truth)), len(truth))
            for name, predict in predictors.items()
        }
    )
    print(shots_line(rows[-1], predictors), flush=True)
    return rows, at_goal


def shots_line(row: dict, names) -> str:
    cells = (f"{row[n]['mean']:6.1%} [{row[n]['low']:.1%}-{row[n]['high']:.1%}]" for n in names)
    return f"{row['shots']!s:>4}/class  " + "  ".join(cells)


def goal_check(rows: list[dict], at_goal: dict) -> dict:
    """From GOAL_SHOTS photos per class, within GOAL_POINTS points of the best accuracy with
    every label? For the best method at GOAL_SHOTS: on average, and in which share of draws."""
    names = list(at_goal)
    every = max(rows[-1][n]["mean"] for n in names)
    few = next(r for r in rows if r["shots"] == GOAL_SHOTS)
    best = max(names, key=lambda n: few[n]["mean"])
    within = 100 * (every - np.asarray(at_goal[best])) <= GOAL_POINTS
    return {
        "shots": GOAL_SHOTS,
        "points": GOAL_POINTS,
        "every_label_best": every,
        "every_label_method": max(names, key=lambda n: rows[-1][n]["mean"]),
        "few_shot_method": best,
        "few_shot_mean": few[best]["mean"],
        "few_shot_low": few[best]["low"],
        "gap_points": 100 * (every - few[best]["mean"]),
        "met_on_average": bool(100 * (every - few[best]["mean"]) <= GOAL_POINTS),
        "draws_within": float(np.mean(within)),
    }


# --------------------------------------------------------------------------- part 2
def fit_temperature(x: np.ndarray, y: np.ndarray, classes: int) -> float:
    """The temperature of softmax(cosine to the prototypes / T) with the largest leave-one-out
    likelihood of the labelled rows (each row's own prototype computed without it)."""
    sums = np.stack([x[y == c].sum(axis=0) for c in range(classes)])
    counts = np.bincount(y, minlength=classes)
    sims = x @ unit(sums).T
    own = np.sum(x * unit(sums[y] - x), axis=1)  # a class of one photo: similarity 0
    sims[np.arange(len(x)), y] = own
    keep = counts[y] > 1
    sims, y = sims[keep], y[keep]
    losses = []
    for t in TEMPERATURES:
        z = sims / t
        top = z.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        losses.append(np.mean(log_norm - z[np.arange(len(z)), y]))
    return float(TEMPERATURES[int(np.argmin(losses))])


def softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def fit_classifier(model: str, x: np.ndarray, y: np.ndarray, classes: int):
    """``(probabilities of rows, temperature)``: the centred prototypes' softmax of cosine
    similarities over a fitted temperature, or a logistic regression (temperature None)."""
    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000).fit(x, y).predict_proba, None
    protos = prototypes(x, y, classes)
    temperature = fit_temperature(x, y, classes)
    return (lambda rows: softmax(rows @ protos.T / temperature)), temperature


def margins(probabilities: np.ndarray) -> np.ndarray:
    """The largest minus the second largest probability of each row."""
    p = np.sort(probabilities, axis=1)
    return p[:, -1] - p[:, -2]


def k_center(x: np.ndarray, candidates: np.ndarray, shown: np.ndarray, count: int):
    """``count`` candidates by farthest-point (k-center greedy) from the ``shown`` rows."""
    distance = 1 - np.max(x[candidates] @ x[shown].T, axis=1)
    chosen = []
    for _ in range(count):
        j = int(np.argmax(distance))
        chosen.append(candidates[j])
        distance = np.minimum(distance, 1 - x[candidates] @ x[candidates[j]])
        distance[j] = -np.inf
    return np.array(chosen)


def outlier_mask(x: np.ndarray) -> np.ndarray:
    """The audit's outliers among all the rows: leave-one-out k-NN score past the Tukey fence."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    scores = 1 - kth_largest(sims, [OUTLIER_K])[:, 0]
    first, third = np.quantile(scores, [0.25, 0.75])
    return scores > third + FENCE * (third - first)


def allowed(rule: str, x, candidates, labelled, rejected, outliers) -> np.ndarray:
    """Which ``candidates`` the rule lets be shown (a boolean mask); rules joined by ``+``
    must all let a photo through."""
    keep = np.ones(len(candidates), bool)
    for part in rule.split("+"):
        if part == "outliers":
            keep &= ~outliers[candidates]
        elif part == "far":
            within = x[labelled] @ x[labelled].T
            np.fill_diagonal(within, -np.inf)
            nearest = np.max(x[candidates] @ x[labelled].T, axis=1)
            keep &= 1 - nearest <= np.max(1 - within.max(axis=1))
        elif part == "none_of_these" and len(rejected):
            nearest = np.max(x[candidates] @ x[labelled].T, axis=1)
            keep &= nearest >= np.max(x[candidates] @ x[rejected].T, axis=1)
        elif part not in ("none", "none_of_these"):
            raise ValueError(rule)
    return keep


def choose(strategy: str, x, candidates, shown, probabilities, rng) -> np.ndarray:
    """BATCH of ``candidates`` to show next (``probabilities``: the model's, of rows)."""
    if strategy == "random":
        return rng.choice(candidates, BATCH, replace=False)
    if strategy == "diversity":
        return k_center(x, candidates, shown, BATCH)
    order = np.argsort(margins(probabilities(x[candidates])), kind="stable")
    if strategy == "uncertainty":
        return candidates[order[:BATCH]]
    if strategy == "uncertainty_diversity":
        return k_center(x, candidates[order[:CANDIDATES]], shown, BATCH)
    raise ValueError(strategy)


def simulate(loop: dict, model: str, strategy: str, rule: str, seed: int) -> dict:
    """One seed of the loop: held-out accuracy after each round, photos shown and rejected."""
    x, truth, held, held_truth = loop["x"], loop["truth"], loop["heldout"], loop["heldout_truth"]
    classes = int(truth.max()) + 1
    rng = np.random.default_rng(seed)
    labelled = draw_per_class(truth, START, rng)
    rejected = np.array([], int)
    accuracy, temperatures = [], []
    for step in range(ROUNDS + 1):
        probabilities, temperature = fit_classifier(model, x[labelled], truth[labelled], classes)
        accuracy.append(float(np.mean(np.argmax(probabilities(held), axis=1) == held_truth)))
        if step == ROUNDS:
            break
        shown = np.concatenate([labelled, rejected])
        candidates = np.setdiff1d(np.arange(len(x)), shown)
        candidates = candidates[allowed(rule, x, candidates, labelled, rejected, loop["outliers"])]
        temperatures += [temperature] if temperature else []
        chosen = choose(strategy, x, candidates, shown, probabilities, rng)
        labelled = np.concatenate([labelled, chosen[truth[chosen] >= 0]])
        rejected = np.concatenate([rejected, chosen[truth[chosen] < 0]])
    return {"accuracy": accuracy, "rejected": len(rejected), "temperatures": temperatures}


def make_pool(data: dict, with_foreign: bool) -> dict:
    """The loop's pool (true labels, -1 for foreign photos) and held-out photos, all in the
    embedding centred on the photos at hand (pool and held-out)."""
    parts = [data["pool"], data["foreign"]] if with_foreign else [data["pool"]]
    raw = np.concatenate(parts)
    truth = np.concatenate(
        [data["pool_labels"], np.full(len(data["foreign"]), -1)]
        if with_foreign
        else [data["pool_labels"]]
    )
    mean = np.concatenate([raw, data["heldout"]]).mean(axis=0)
    x = centred(raw, mean)
    return {
        "x": x,
        "truth": truth,
        "heldout": centred(data["heldout"], mean),
        "heldout_truth": data["heldout_labels"],
        "outliers": outlier_mask(x),
    }


def run_loop(data: dict, seeds: int) -> dict:
    """Every strategy: with each model on the clean pool, and with the few-shot model under
    each rule on the pool with the foreign photos mixed in."""
    name = data["foreign_name"]
    pools = {False: make_pool(data, False), True: make_pool(data, True)}
    titles = {
        False: f"cats and dogs ({len(data['pool']):,})",
        True: f"cats and dogs + {len(data['foreign']):,} {name}",
    }
    cases = [(False, model, "none") for model in MODELS]
    cases += [(True, MODELS[0], rule) for rule in RULES]
    configs, temperatures = [], []
    for foreign, model, rule in cases:
        loop = pools[foreign]
        start = START * (int(loop["truth"].max()) + 1)
        for strategy in STRATEGIES:
            runs = [simulate(loop, model, strategy, rule, SEED + s) for s in range(seeds)]
            temperatures += [t for r in runs for t in r["temperatures"]]
            accuracy = np.array([r["accuracy"] for r in runs])
            rounds = [
                {"round": r, "shown": start + BATCH * r} | spread(accuracy[:, r])
                for r in range(ROUNDS + 1)
            ]
            rejected = np.array([r["rejected"] for r in runs]) / (ROUNDS * BATCH)
            configs.append(
                {
                    "pool": titles[foreign],
                    "foreign": foreign,
                    "model": model,
                    "rule": rule,
                    "strategy": strategy,
                    "rounds": rounds,
                    "foreign_share": spread(rejected),
                }
            )
            print(loop_line(configs[-1]), flush=True)
    flagged = {}
    for foreign, loop in pools.items():
        inside = loop["truth"] >= 0
        flagged[titles[foreign]] = {"cats and dogs": float(loop["outliers"][inside].mean())}
        if foreign:
            flagged[titles[foreign]][name] = float(loop["outliers"][~inside].mean())
    quantiles = {"p10": 0.1, "median": 0.5, "p90": 0.9}
    return {
        "start_per_class": START,
        "batch": BATCH,
        "rounds": ROUNDS,
        "candidates": CANDIDATES,
        "seeds": seeds,
        "models": list(MODELS),
        "foreign_set": name,
        "outlier_rule_flags": flagged,
        "temperature": {k: float(np.quantile(temperatures, q)) for k, q in quantiles.items()},
        "configs": configs,
    }


def loop_line(config: dict) -> str:
    means = " ".join(f"{r['mean']:6.1%}" for r in config["rounds"])
    share = config["foreign_share"]["mean"]
    names = f"{config['model'][:10]:<10} {config['rule'][:13]:<13} {config['strategy'][:13]:<13}"
    return f"{names} {means} foreign {share:.0%}"


# --------------------------------------------------------------------------- figures
LABELS = {
    "prototype": "(a) prototypes",
    "prototype_centred": "(b) centred prototypes (photos at hand)",
    "prototype_centred_pool": "(b') centred prototypes (pool's mean)",
    "knn": "(c) k-NN vote, k = min(5, shots)",
    "logistic": "(d) logistic regression head",
}


def draw_figures(result: dict, folder: Path = FIGURES) -> list[Path]:
    """fewshot_accuracy.png (accuracy against photos per class) and fewshot_loop.png
    (accuracy against photos shown, per strategy), from a results file's content."""
    paths = [folder / "fewshot_accuracy.png", folder / "fewshot_loop.png"]
    shots_figure(result).savefig(paths[0], format="png")
    loop_figure(result["extras"]["loop"]).savefig(paths[1], format="png")
    return paths


def shots_figure(result: dict):
    """Each method's mean accuracy against labelled photos per class, its interval as an
    error bar (the methods side by side), and the goal's line."""
    from matplotlib.figure import Figure

    rows, goal = result["rows"], result["extras"]["goal"]
    every = 200  # where "all" sits on the axis
    x = np.array([*(r["shots"] for r in rows[:-1]), every], float)
    fig = Figure(figsize=(7.5, 4.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, (name, label) in enumerate(LABELS.items()):
        mean = np.array([100 * r[name]["mean"] for r in rows])
        spread = [
            mean - [100 * r[name]["low"] for r in rows],
            [100 * r[name]["high"] for r in rows] - mean,
        ]
        at = x * 1.07 ** (i - (len(LABELS) - 1) / 2)  # side by side on the log axis
        dashed = "--" if name.endswith("_pool") else "-"
        line = ax.plot(at[:-1], mean[:-1], ls=dashed, marker="o", ms=3, label=label)[0]
        ax.errorbar(at, mean, yerr=spread, fmt="none", color=line.get_color(), lw=1, capsize=2)
        ax.plot(at[-1:], mean[-1:], "o", ms=3, color=line.get_color())
    target = 100 * goal["every_label_best"] - goal["points"]
    best = f"{goal['points']:g} points below the best with every label"
    ax.axhline(target, color="grey", ls=":", lw=1, label=f"goal: {best}")
    ax.set_xscale("log")
    ax.set_xticks(x, [*(str(r["shots"]) for r in rows[:-1]), f"all\n({rows[-1]['labelled']:,})"])
    ax.minorticks_off()
    ax.set_ylim(60, 100)
    ax.set_xlabel("labelled photos per class")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(
        f"{result['extras']['photos']['heldout']:,} held-out photos: mean and "
        f"2.5-97.5% of {rows[0]['draws']} draws (all: 95% Wilson)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def loop_figure(loop: dict):
    """Four panels: the clean pool with the few-shot model and with the logistic head; the pool
    with the foreign photos, without a rule and with the rule that let the fewest through
    under uncertainty sampling."""
    from matplotlib.figure import Figure

    configs, few_shot, head = loop["configs"], *loop["models"]
    ruled = [c for c in configs if c["foreign"] and c["strategy"] == "uncertainty"]
    best = min((c for c in ruled if c["rule"] != "none"), key=lambda c: c["foreign_share"]["mean"])
    panels = [
        (False, few_shot, "none"),
        (False, head, "none"),
        (True, few_shot, "none"),
        (True, few_shot, best["rule"]),
    ]
    fig = Figure(figsize=(10, 7.5), dpi=100, layout="constrained")
    for ax, (foreign, model, rule) in zip(fig.subplots(2, 2).flat, panels, strict=True):
        chosen = [
            c for c in configs if (c["foreign"], c["model"], c["rule"]) == (foreign, model, rule)
        ]
        for config in chosen:
            loop_lines(
                ax,
                config,
                f" ({config['foreign_share']['mean']:.0%} {loop['foreign_set']})"
                if foreign
                else "",
            )
        lowest = min(r["low"] for c in chosen for r in c["rounds"])
        ax.set_ylim(min(90, 5 * np.floor(20 * lowest)), 100)
        rule_text = "" if rule == "none" else f", rule: {rule}"
        ax.set_title(f"{chosen[0]['pool']}\nmodel: {model}{rule_text}", fontsize=9)
        ax.set_xlabel("photos shown (labels spent)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def loop_lines(ax, config: dict, suffix: str) -> None:
    """One strategy's mean accuracy per round and its 2.5-97.5% band."""
    shown = [r["shown"] for r in config["rounds"]]
    label = config["strategy"].replace("_", " + ") + suffix
    line = ax.plot(shown, [100 * r["mean"] for r in config["rounds"]], label=label)[0]
    low, high = ([100 * r[k] for r in config["rounds"]] for k in ("low", "high"))
    ax.fill_between(shown, low, high, alpha=0.12, color=line.get_color())


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="cats_and_dogs_filtered")
    parser.add_argument(
        "--foreign", action="append", metavar="NAME=DIR", help="foreign photos for the pool"
    )
    parser.add_argument("--cache", type=Path, help="bench_unknown.py's features (.npz)")
    parser.add_argument("--weights", type=Path, help="MobileNetV2@160 base, if not cached")
    parser.add_argument("--draws", type=int, default=DRAWS, help="draws per number of photos")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds of the loop")
    parser.add_argument("--figures-only", action="store_true", help="redraw from --results")
    add_results_arguments(parser, "fewshot")
    args = parser.parse_args()
    if args.figures_only:
        print(*draw_figures(json.loads(args.results.read_text())), sep="\n")
        return
    if not args.data or not args.foreign:
        parser.error("--data and --foreign are needed (and --cache or --weights)")
    if not (args.cache and args.cache.is_file()) and not args.weights:
        parser.error("without a filled --cache, --weights is needed to extract the features")
    data = load_data(args)
    start = time.perf_counter()
    rows, at_goal = accuracy_vs_shots(data, args.draws)
    goal = goal_check(rows, at_goal)
    print("goal", goal, flush=True)
    part1 = time.perf_counter() - start
    loop = run_loop(data, args.seeds)
    extras = {
        "photos": {
            "pool": len(data["pool"]),
            "heldout": len(data["heldout"]),
            data["foreign_name"]: len(data["foreign"]),
        },
        "goal": goal,
        "loop": loop,
        "seconds": {
            "accuracy": round(part1, 1),
            "loop": round(time.perf_counter() - start - part1, 1),
        },
    }
    title = (
        f"Few labelled photos on real photos: {len(data['pool']):,} pool photos, "
        f"{len(data['heldout']):,} held out"
    )
    notes = (
        f"Mean and, in brackets, the 2.5-97.5% percentiles over {args.draws} random draws of "
        "the labelled photos (the same draws for every method); the row `all` is one run on "
        "every pool photo, with its 95% Wilson interval over the 1,000 held-out photos. "
        "(b) is centred on the mean unit embedding of all 2,999 photos at hand (pool and "
        "held-out), (b') on the pool's 1,999 alone; (d) is scikit-learn's logistic regression "
        "(C = 1) on the unit embedding, approximately catdog's cached-feature head."
    )
    write_results(args, title, rows, notes, extras=extras)
    if not args.no_save:
        print(*draw_figures(json.loads(args.results.read_text())), sep="\n")


if __name__ == "__main__":
    main()
