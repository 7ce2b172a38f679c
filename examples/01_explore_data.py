"""Explore the data: a grid of sample images, label counts, and the majority baseline.

The post's "Before Start" section: download cats_and_dogs_filtered, look at a few cats and
dogs, count the labels, and note that always guessing the most frequent label scores 50%.
Unlike the post, the test split here is a fixed part of the validation folder that never
overlaps the validation split (``splits.files`` lists every split's files).

    python examples/01_explore_data.py --demo --out runs/examples
"""

from _common import load_splits, parse_args, run

from catdog.data.pipelines import label_counts, majority_baseline
from catdog.report.plotting import plot_label_counts, plot_samples


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    splits = load_splits(args)
    print(splits)  # classes, images per split, image size

    # The post's two-row visualisation: a few images of each class, titled by class.
    plot_samples(splits, per_class=3, path=args.out / "samples.png")

    # The post counts labels by iterating over the dataset; catdog reads the file lists.
    for split in ("train", "validation", "test"):
        print(f"{split:>10}: {label_counts(splits, split)}")
    plot_label_counts(splits, path=args.out / "label_counts.png")

    # Always guessing the most frequent training label: the score every model must beat.
    baseline = majority_baseline(splits)
    print(f"majority baseline: {baseline:.1%}")

    overlap = set(splits.files["validation"]) & set(splits.files["test"])
    print(f"files shared by validation and test: {len(overlap)}")
    print(f"plots written to {args.out}/samples.png and {args.out}/label_counts.png")


if __name__ == "__main__":
    run(main)
