"""Score the four models on the test split and print them next to the post's results.

The post scores only model D, on test batches taken out of a reshuffled validation set (so
test and validation overlap). Here all four models trained by examples 02-05 are scored on
the same held-out test split, which shares no file with training or validation.

    python examples/06_score_on_test.py --demo --out runs/examples   # after 02-05 with --demo
"""

from _common import load_splits, parse_args, run

from catdog import InvalidArgumentError, evaluate, load_model
from catdog.io import write_json, write_text
from catdog.report.evaluation import compare_reports
from catdog.report.plotting import plot_confusion_matrix, plot_misclassified

# What the "Image Classification with TensorFlow" post reports (validation accuracy while
# training; test accuracy for model D only).
POST = {
    "baseline": ("A. first model", "60-63%", "-"),
    "augmented": ("B. data augmentation", "57-60%", "-"),
    "preprocessed": ("C. preprocessing", "70-72%", "-"),
    "transfer": ("D. transfer learning", "96-97%", "95%"),
}
EXAMPLES = {
    "baseline": "02_first_model",
    "augmented": "03_augmentation",
    "preprocessed": "04_preprocessing",
    "transfer": "05_transfer_learning",
}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    for name, script in EXAMPLES.items():
        if not (args.out / name / "model.keras").is_file():
            raise FileNotFoundError(
                f"{args.out / name / 'model.keras'} does not exist: run examples/{script}.py "
                "first, with the same --out, --data/--demo and --image-size options."
            )
    splits = load_splits(args)
    rows, reports = [], {}
    for name, (title, post_validation, post_test) in POST.items():
        path = args.out / name / "model.keras"
        model = load_model(path)
        if tuple(model.input_shape[1:3]) != splits.image_size:
            raise InvalidArgumentError(
                f"{path} takes {model.input_shape[1:3]} images but --image-size gives "
                f"{splits.image_size}: pass the --image-size the model was trained with."
            )
        validation = evaluate(model, splits, split="validation")
        reports[name] = test = evaluate(model, splits)  # split="test" is the default
        rows.append(
            {
                "model": title,
                "post validation": post_validation,
                "post test": post_test,
                "catdog validation": f"{validation.accuracy:.1%}",
                "catdog test (95% interval)": f"{test.accuracy:.1%} "
                f"({test.accuracy_interval[0]:.1%} to {test.accuracy_interval[1]:.1%})",
            }
        )

    baseline = reports["baseline"].baseline
    header = list(rows[0])
    table = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row.values()) + " |" for row in rows),
    ]
    ranked = sorted(reports, key=lambda n: reports[n].accuracy, reverse=True)
    note = (
        f"Test split: {reports['baseline'].count} images; majority baseline {baseline:.1%}. "
        "Best vs runner-up: "
        + compare_reports(reports[ranked[0]], reports[ranked[1]], names=ranked[:2])
    )
    print("\n".join(table) + "\n\n" + note)
    write_text(args.out / "comparison.md", "\n".join(table) + "\n\n" + note + "\n")
    write_json(args.out / "comparison.json", {n: r.to_dict() for n, r in reports.items()})

    best = max(reports, key=lambda n: reports[n].accuracy)
    print(f"\nbest on the test split: {best}\n{reports[best]}")
    reports[best].save(args.out)  # report.txt and report.json
    plot_confusion_matrix(reports[best], path=args.out / "confusion_matrix.png")
    plot_misclassified(
        reports[best], image_size=splits.image_size, path=args.out / "misclassified.png"
    )


if __name__ == "__main__":
    run(main)
