"""Model A: the post's first model, a small CNN trained from scratch.

Two Conv2D + MaxPooling blocks, dropout, a dense layer and a 2-way output, trained with Adam
on sparse categorical cross-entropy. The post's head is ``Dense(2, activation="sigmoid")``,
which gives two unrelated numbers under that loss; catdog's head is a softmax, so the outputs
are class probabilities. The "Image Classification with TensorFlow" post reached 60-63%
validation accuracy.

    python examples/02_first_model.py --demo --out runs/examples
"""

from _common import load_splits, model_folder, parse_args, run

from catdog import build_baseline_model, train
from catdog.data.pipelines import majority_baseline
from catdog.report.plotting import plot_history


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], epochs=20, demo_epochs=8)
    splits = load_splits(args)
    folder = model_folder(args, "baseline")

    model = build_baseline_model(
        input_shape=(args.image_size, args.image_size, 3), num_classes=len(splits.class_names)
    )
    model.summary()

    # train() compiles the model (Adam, the loss matching the head) and keeps the epoch with
    # the best validation accuracy in model.keras, written atomically.
    history = train(model, splits, args.epochs, checkpoint=folder / "model.keras")

    plot_history(history, baseline=majority_baseline(splits), path=folder / "history.png")
    print(f"best validation accuracy: {max(history.history['val_accuracy']):.1%}")


if __name__ == "__main__":
    run(main)
