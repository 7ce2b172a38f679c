"""The few-shot model: class prototypes on a pretrained base's embedding."""

import json

import keras
import numpy as np
import pytest

from catdog.errors import InvalidArgumentError
from catdog.models.prototypes import PrototypeHead, build_prototype_model, prototype_head

SIZE = 64


def test_prototypes_are_centred_class_means_and_score_by_cosine():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 3
    labels = np.repeat(np.arange(3), 5)
    features = centres[labels] + rng.normal(size=(15, 16))
    head = PrototypeHead(3)
    head.set_prototypes(features, labels)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(head.centre.numpy(), unit.mean(axis=0), atol=1e-6)
    assert np.allclose(np.linalg.norm(head.prototypes.numpy(), axis=1), 1.0, atol=1e-5)
    probabilities = np.asarray(head(features.astype("float32")))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities.argmax(axis=1) == labels).mean() == 1.0  # separable: all right
    with pytest.raises(InvalidArgumentError, match=r"class\(es\) \[2\]"):
        PrototypeHead(3).set_prototypes(features[:10], labels[:10])  # no image of class 2
    with pytest.raises(InvalidArgumentError, match=r"one label in 0..2 per feature row"):
        PrototypeHead(3).set_prototypes(features, labels + 1)  # a label 3


def test_a_prototype_model_is_a_catdog_classifier_that_loads_as_saved(tmp_path):
    from catdog import build_model
    from catdog.models.registry import model_spec

    model = build_model("prototypes", input_shape=(SIZE, SIZE, 3), weights=None,
                        class_names=["cats", "dogs"])  # fmt: skip
    assert model_spec("prototypes").pretrained
    assert (model.activation, model.pooling, model.num_classes) == ("softmax", "avg", 2)
    assert not model.trainable_weights  # set, never trained
    head = prototype_head(model)
    head.set_prototypes(np.eye(1280)[[0, 1]], [0, 1])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    saved = prototype_head(loaded).prototypes.numpy()
    np.testing.assert_array_equal(saved, head.prototypes.numpy())
    assert loaded.class_names == ["cats", "dogs"]
    assert prototype_head(build_model("baseline", input_shape=(32, 32, 3))) is None


@pytest.fixture(scope="module")
def colour_splits(tmp_path_factory):
    """Reddish "cats" and bluish "dogs" at 64x64 (20 + 10 per class): what frozen random
    features of a stand-in base still tell apart by their mean."""
    from PIL import Image

    from catdog.data.pipelines import from_directory

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("validation", 10)):
        for name, colour in (("cats", (200, 80, 40)), ("dogs", (40, 80, 200))):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.array(colour) + rng.normal(0, 20, (SIZE, SIZE, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                image.save(root / split / name / f"{i}.png")
    return from_directory(root, image_size=(SIZE, SIZE), batch_size=16, seed=5)


@pytest.fixture(scope="module")
def few_shot(colour_splits, tmp_path_factory):
    """``(model, history, folder)``: a few-shot model on a stand-in base, set by ``train``
    (checkpoint ``folder/best.keras``) and calibrated."""
    from catdog import calibrate, train
    from catdog.models.weights import make_stand_in_weights

    folder = tmp_path_factory.mktemp("few_shot")
    keras.utils.set_random_seed(0)  # the stand-in base's random convolutions
    images = np.concatenate([x.numpy() for x, _ in colour_splits.train])  # all: any order
    weights = make_stand_in_weights(folder / "w.weights.h5", images)
    model = build_prototype_model((SIZE, SIZE, 3), weights=weights, class_names=["cats", "dogs"])
    history = train(model, colour_splits, epochs=5, checkpoint=folder / "best.keras")
    pixels = np.concatenate([x.numpy() for x, _ in colour_splits.validation])
    history.predicted = np.argmax(model.predict(pixels, verbose=0), axis=1)  # before calibrating
    calibrate(model, colour_splits, unknown_coverage=0.9)
    return model, history, folder


def test_train_sets_the_prototypes_in_one_pass_and_the_model_calibrates_and_exports(
    colour_splits, few_shot
):
    from catdog.data.images import load_images
    from catdog.deploy.predict import predict_scores
    from catdog.models.confidence import confidence_layer

    splits, (model, history, folder) = colour_splits, few_shot
    assert history.epoch == [0] and history.history["accuracy"][0] >= 0.9, history.history
    assert history.history["val_accuracy"][0] >= 0.75, history.history
    assert (folder / "best.keras").is_file()
    labels = np.concatenate([y.numpy() for _, y in splits.validation])
    right = history.predicted == labels
    assert right.mean() == pytest.approx(history.history["val_accuracy"][0])  # as reported
    pixels = load_images(splits.files["validation"], (SIZE, SIZE))
    assert confidence_layer(model).method == "knn"
    tf_probs, tf_scores = predict_scores(model, pixels, engine="tensorflow")
    lite_probs, lite_scores = predict_scores(model, pixels, engine="litert")
    np.testing.assert_allclose(lite_probs, tf_probs, atol=1e-3)
    np.testing.assert_allclose(lite_scores, tf_scores, atol=1e-3)


@pytest.mark.slow
def test_catdog_train_model_prototypes_writes_a_run(synthetic_root, tmp_path, capsys):
    from catdog.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", str(synthetic_root), "--model", "prototypes", "--image-size",
            "64", "--weights", "none", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (out / "model.keras").is_file() and "accuracy" in report
    record = json.loads((out / "config.json").read_text())
    assert record["model"] == "prototypes"
    status = main([*args[:-1], str(tmp_path / "tuned"), "--fine-tune-epochs", "1"])
    assert status == 2 and "not trained" in capsys.readouterr().err


def test_a_class_is_added_without_retraining_the_others(colour_splits, few_shot, tmp_path, capsys):
    from PIL import Image

    from catdog.cli import main
    from catdog.data.images import load_images
    from catdog.deploy.export import load_model, save_model
    from catdog.models.confidence import confidence_layer

    splits, (model, _, _) = colour_splits, few_shot
    save_model(model, tmp_path / "model.keras")
    greens = tmp_path / "greens"
    greens.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):
        pixels = np.clip(np.array((40, 200, 60)) + rng.normal(0, 40, (SIZE, SIZE, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(greens / f"{i}.png")
    assert main(["add-class", str(tmp_path / "model.keras"), str(greens)]) == 0
    assert "cats, dogs, greens" in capsys.readouterr().out
    grown = load_model(tmp_path / "model_with_greens.keras")
    assert grown.class_names == ["cats", "dogs", "greens"] and grown.output_shape[-1] == 3
    before = np.asarray(prototype_head(model).prototypes)
    np.testing.assert_allclose(np.asarray(prototype_head(grown).prototypes)[:2], before)
    old, new = confidence_layer(model), confidence_layer(grown)
    assert new.bank.shape[0] == old.bank.shape[0] + 8
    assert float(new.threshold.numpy()) == pytest.approx(float(old.threshold.numpy()))
    from catdog.deploy.predict import predict

    answers = predict(grown, sorted(str(p) for p in greens.iterdir()))
    assert [a.class_name for a in answers].count("greens") >= 7  # its own photos, not unknown
    pixels = load_images(splits.files["validation"], (SIZE, SIZE))
    before, after = model.predict(pixels, verbose=0), grown.predict(pixels, verbose=0)
    # between the old classes nothing changed: the same ranking of cats against dogs
    np.testing.assert_array_equal(after[:, :2].argmax(axis=1), before.argmax(axis=1))
    assert main(["add-class", str(tmp_path / "model.keras"), str(greens)]) != 0  # out exists
    assert "exists" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="few-shot model"):
        from catdog import build_model
        from catdog.training.prototypes import add_class

        add_class(build_model("baseline", input_shape=(32, 32, 3)), greens, "greens")
