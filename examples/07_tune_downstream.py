"""Tune catdog models with KerasTuner from your own project, over a space you restrict.

Needs the tuner extra (``pip install ".[tuner]"`` in catdog's source). A downstream project
declares catdog with a direct reference, since the package index's ``catdog`` is another
project. In its ``pyproject.toml``::

    dependencies = ["catdog[tuner] @ file:///path/to/catdog"]  # a source checkout
    # or a built wheel: "catdog[tuner] @ file:///path/to/catdog-0.2.0-py3-none-any.whl"

catdog provides the search space, ``CatDogHyperModel``; your project keeps control of
KerasTuner: which hyperparameters to search and over which values, which tuner, where results
go. Then the best
configuration is retrained from scratch and scored once on the test split.

    python examples/07_tune_downstream.py --demo --trials 4 --out runs/examples
"""

import keras_tuner as kt
from _common import load_splits, model_folder, parse_args, run

from catdog import evaluate, load_model, train
from catdog.training.tuning import CatDogHyperModel, validate_hyperparameters


def add_arguments(parser) -> None:
    parser.add_argument(
        "--trials", type=int, help="configurations to try (default: 10; 3 with --demo)"
    )


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0], epochs=10, demo_epochs=4, add_arguments=add_arguments
    )
    trials = args.trials or (3 if args.demo else 10)
    splits = load_splits(args)
    folder = model_folder(args, "tuning")

    # The space: two CNN families of the zoo, and only the hyperparameters we care about.
    hypermodel = CatDogHyperModel(
        input_shape=(args.image_size, args.image_size, 3),
        num_classes=len(splits.class_names),
        families=["baseline", "preprocessed"],
    )
    hp = kt.HyperParameters()
    hp.Choice("family", ["baseline", "preprocessed"])
    hp.Int("conv_blocks", 2, 3)
    hp.Choice("dense_units", [32, 64, 128])
    hp.Float("learning_rate", 3e-4, 3e-3, sampling="log")
    validate_hyperparameters(hp)  # a value catdog cannot build fails now, not in trial 7
    hp = hypermodel.condition(hp)  # conv_blocks only exists where the family has conv blocks

    # A plain KerasTuner tuner; tune_new_entries=False keeps every other hyperparameter at
    # catdog's default (the post's architecture) instead of searching it.
    tuner = kt.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=trials,
        hyperparameters=hp,
        tune_new_entries=False,
        directory=folder,
        project_name="search",
        overwrite=True,
        seed=args.seed,
    )
    tuner.search(splits.train, validation_data=splits.validation, epochs=args.epochs, verbose=2)
    tuner.results_summary(num_trials=3)
    best = tuner.get_best_hyperparameters()[0]
    print(f"best hyperparameters: {best.values}")

    # Retrain the best configuration from scratch, keep its best epoch, score it on test.
    model = hypermodel.build(best)
    train(model, splits, args.epochs, checkpoint=folder / "best.keras")
    print(evaluate(load_model(folder / "best.keras"), splits))


if __name__ == "__main__":
    run(main)
