"""Model B: data augmentation (random flips and rotations) in front of a small CNN.

The post previews RandomFlip and RandomRotation(0.2) on one image, then puts them in front of
a one-block CNN. The augmentation layers are part of the model: they change the images while
training and pass them through unchanged at inference (``predict``, ``evaluate``), and catdog's
exports leave them out. The "Image Classification with TensorFlow" post reached 57-60%
validation accuracy.

    python examples/03_augmentation.py --demo --out runs/examples
"""

from _common import load_splits, model_folder, parse_args, run

from catdog import build_augmented_model, train
from catdog.data.pipelines import majority_baseline
from catdog.models.layers import build_augmentation
from catdog.report.plotting import plot_augmentation, plot_history


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], epochs=20, demo_epochs=8)
    splits = load_splits(args)
    folder = model_folder(args, "augmented")

    # One training image and eight random versions of it, as the post's augmentation preview.
    images, _ = next(iter(splits.train))
    augmentation = build_augmentation(flip="horizontal_and_vertical", rotation=0.2, seed=args.seed)
    plot_augmentation(images[0], augmentation, n=8, path=folder / "augmentation.png")

    model = build_augmented_model(
        input_shape=(args.image_size, args.image_size, 3),
        num_classes=len(splits.class_names),
        flip="horizontal_and_vertical",
        rotation=0.2,  # the post's settings (and the defaults); try zoom=0.1 or contrast=0.2
    )
    model.summary()
    history = train(model, splits, args.epochs, checkpoint=folder / "model.keras")

    plot_history(history, baseline=majority_baseline(splits), path=folder / "history.png")
    print(f"best validation accuracy: {max(history.history['val_accuracy']):.1%}")


if __name__ == "__main__":
    run(main)
