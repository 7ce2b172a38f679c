"""Understand and improve a model: Grad-CAM, test-time augmentation, the learning-rate finder.

Questions the post leaves open after "95% on the test set": where does the model look
(Grad-CAM heatmaps over test images, for the class it predicts), does averaging each image
with its mirror image help (test-time augmentation, scored on the test split), and which
learning rate to train with (Smith's range test on a fresh model). Uses model C from
``04_preprocessing.py``; writes ``gradcam.png`` and ``lr_find.png`` into ``--out/understand``.

    python examples/08_understand.py --demo --out runs/examples   # after 04 with --demo
"""

from _common import load_splits, model_folder, parse_args, run

from catdog import build_preprocessed_model, evaluate, load_model
from catdog.data.images import load_images
from catdog.report.interpret import gradcam
from catdog.report.plotting import plot_gradcam
from catdog.training.lr_finder import lr_find


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    source = args.out / "preprocessed" / "model.keras"
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} does not exist: run examples/04_preprocessing.py first, with the same "
            "--out, --data/--demo and --image-size options."
        )
    splits = load_splits(args)
    folder = model_folder(args, "understand")
    model = load_model(source)

    # Grad-CAM: what the model takes as evidence for the class it predicts
    test = list(zip(splits.files["test"], splits.labels["test"], strict=True))
    chosen = []
    for c in range(len(splits.class_names)):  # a few test images of every class
        chosen += [item for item in test if item[1] == c][: 8 // len(splits.class_names)]
    images = load_images([path for path, _ in chosen], splits.image_size)
    names = model.class_names
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    titles = [
        f"{names[label]} -> {names[p]}" for (_, label), p in zip(chosen, predicted, strict=True)
    ]
    plot_gradcam(images, gradcam(model, images), titles, path=folder / "gradcam.png")

    # Test-time augmentation: each image and its mirror image, averaged
    plain, flipped = evaluate(model, splits), evaluate(model, splits, tta="flip")
    print(f"test accuracy: {plain.accuracy:.1%}; with flip TTA: {flipped.accuracy:.1%}")

    # The learning-rate finder, on a fresh model C (it leaves the weights as they were)
    fresh = build_preprocessed_model(
        input_shape=(*splits.image_size, 3), class_names=splits.class_names
    )
    result = lr_find(fresh, splits)
    result.plot(path=folder / "lr_find.png")
    shown = "none" if result.suggestion is None else f"{result.suggestion:.2g}"
    print(f"suggested learning rate: {shown}" + (f" ({result.note})" if result.note else ""))


if __name__ == "__main__":
    run(main)
