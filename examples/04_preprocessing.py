"""Model C: MobileNetV2's input scaling (pixels to -1..1) in front of augmentation and a CNN.

The post wraps ``tf.keras.applications.mobilenet_v2.preprocess_input`` in a model of its own;
catdog's equivalent is a plain ``Rescaling(1/127.5, offset=-1)`` layer, which saves and loads
without unsafe deserialisation. Scaling the inputs lets the same CNN train faster and better:
the "Image Classification with TensorFlow" post reached 70-72% validation accuracy.

    python examples/04_preprocessing.py --demo --out runs/examples
"""

from _common import load_splits, model_folder, parse_args, run

from catdog import build_preprocessed_model, train
from catdog.data.pipelines import majority_baseline
from catdog.report.plotting import plot_history


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], epochs=20, demo_epochs=8)
    splits = load_splits(args)
    folder = model_folder(args, "preprocessed")

    model = build_preprocessed_model(
        input_shape=(args.image_size, args.image_size, 3), num_classes=len(splits.class_names)
    )
    print([layer.name for layer in model.layers[:3]])  # scaling first, then the augmentation
    history = train(model, splits, args.epochs, checkpoint=folder / "model.keras")

    plot_history(history, baseline=majority_baseline(splits), path=folder / "history.png")
    print(f"best validation accuracy: {max(history.history['val_accuracy']):.1%}")


if __name__ == "__main__":
    run(main)
