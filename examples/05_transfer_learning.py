"""Model D: transfer learning with a frozen MobileNetV2 base, then fine-tuning its top layers.

The post puts MobileNetV2 (ImageNet weights, without its classifier) under a small head and
trains only the head: 96-97% validation accuracy in the "Image Classification with
TensorFlow" post. catdog then fine-tunes: it unfreezes the
base's top layers and trains on with a 100x smaller learning rate. The base always runs in
inference mode (its BatchNorm statistics stay fixed), which Keras 3 does not do by itself.

    python examples/05_transfer_learning.py                 # ImageNet weights (downloaded once)
    python examples/05_transfer_learning.py --demo          # offline: stand-in weights

``--demo`` cannot download the ImageNet weights. Unless ``--weights`` names a local weights
file, it makes stand-in weights (random convolutions whose BatchNorm statistics are measured on
the training images): the mechanics are the same, the features far weaker than ImageNet's.
"""

import argparse

import numpy as np
from _common import load_splits, model_folder, parse_args, run

from catdog import build_transfer_model, fine_tune, train
from catdog.cli import layer_position
from catdog.data.pipelines import majority_baseline
from catdog.models.weights import make_stand_in_weights
from catdog.report.plotting import plot_history
from catdog.training.fine_tune import merge_histories


def add_arguments(parser) -> None:
    parser.add_argument(
        "--weights",
        help="'imagenet', 'none' or a weights file (default: imagenet; stand-in with --demo)",
    )
    parser.add_argument("--fine-tune-epochs", type=int, help="default: 10; 3 with --demo")
    parser.add_argument(  # the same values as `catdog train --unfreeze-from`
        "--unfreeze-from",
        type=layer_position,
        default=0.65,
        help="where fine-tuning starts unfreezing the base: a fraction of its depth "
        "(default %(default)s: the top 35%%), a layer index or a layer name",
    )
    parser.add_argument(  # as `catdog train --cache-features` (--fast: its old name)
        "--cache-features",
        "--fast",
        dest="cache_features",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="compute the frozen base's features once (much faster stage 1)",
    )


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0], epochs=10, demo_epochs=5, add_arguments=add_arguments
    )
    fine_tune_epochs = (
        args.fine_tune_epochs if args.fine_tune_epochs is not None else (3 if args.demo else 10)
    )
    splits = load_splits(args)
    folder = model_folder(args, "transfer")

    weights = args.weights or "imagenet"  # "imagenet": Keras downloads them once
    if args.weights is None and args.demo:
        images = np.concatenate([x for x, _ in splits.train.take(2)])
        weights = make_stand_in_weights(folder / "stand_in.weights.h5", images)
    model = build_transfer_model(
        input_shape=(args.image_size, args.image_size, 3),
        num_classes=len(splits.class_names),
        weights=None if str(weights).lower() == "none" else weights,
    )
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    print(f"{model.count_params():,} parameters, {trainable:,} trainable (the head)")

    # Stage 1: train the head on the frozen base.
    first = train(
        model,
        splits,
        args.epochs,
        checkpoint=folder / "model.keras",
        cache_features=args.cache_features,
    )
    # Stage 2: unfreeze the base from --unfreeze-from (a fraction, index or name), train on
    # at learning rate 1e-5.
    # The checkpoint keeps whichever epoch of either stage validated best.
    histories = [first]
    if fine_tune_epochs:
        second = fine_tune(
            model,
            splits,
            unfreeze_from=args.unfreeze_from,
            learning_rate=1e-5,
            epochs=fine_tune_epochs,
            history=first,
            checkpoint=folder / "model.keras",
        )
        histories.append(second)
    history = merge_histories(*histories)

    plot_history(
        history,
        fine_tune_start=args.epochs if fine_tune_epochs else None,
        baseline=majority_baseline(splits),
        path=folder / "history.png",
    )
    print(f"best validation accuracy: {max(history['val_accuracy']):.1%}")


if __name__ == "__main__":
    run(main)
