"""The classifier every catdog model is:
[`ImageClassifier`][catdog.models.classifier.ImageClassifier]
(raw 0..255 RGB pixels in, one output per class, its class names carried), compiling it with
the loss its activation needs, its inference-time form and its outputs as probabilities (the
form every export runs, with the model's calibration, is
[`probability_model`][catdog.models.confidence.probability_model])."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from catdog._rules import (
    check_class_names,
    check_fraction,
    check_int,
    check_positive_number,
    check_sides,
)
from catdog.errors import InvalidArgumentError

# ----------------------------------------------------------------------------- the model class
# Layers that change images only in training and pass them through unchanged at inference
# (RandomCrop is left out: at inference it crops).
_AUGMENTATION_TYPES = ("AugMix", "CutMix", "MixUp", "RandAugment")


def is_augmentation_layer(layer: keras.layers.Layer) -> bool:
    """True for a Keras layer that augments in training and is the identity at inference."""
    name = type(layer).__name__
    return (name.startswith("Random") and name != "RandomCrop") or name in _AUGMENTATION_TYPES


@keras.saving.register_keras_serializable(package="catdog")
class ImageClassifier(keras.Sequential):
    """A ``keras.Sequential`` image classifier that knows its class names and augmentation.

    Every model catdog builds is one. ``class_names`` (one per output, or ``None``) and
    ``augmentation`` (the names of the layers that only act in training) are part of its
    ``get_config``, so a saved ``.keras`` file describes itself: loaded anywhere with
    [`catdog.load_model`][catdog.models.saving.load_model] (or ``keras.saving.load_model`` after
    ``import catdog.models.classifier``, which registers this class), it still names its classes,
    and
    [`inference_model`][catdog.models.classifier.inference_model] drops its augmentation by name.
    ``keras.models.clone_model`` returns a plain ``keras.Sequential``: set ``class_names`` (and
    ``multi_label``, ``class_thresholds``) on an ``ImageClassifier`` again if you clone one.

    Like keras-hub's ``ImageClassifier``, it also describes its head: ``num_classes``,
    ``activation`` (``"softmax"``, ``"sigmoid"``, or ``None`` for logits), ``pooling`` and
    ``dropout`` are properties read from its layers and written into its ``get_config``; and
    ``compile(loss="auto")`` (the default) picks the loss, ``from_logits`` included, from
    ``activation`` and ``multi_label``. A ``multi_label`` classifier answers each class on its
    own (a photo may show several classes, or none): a sigmoid head (or logits) and binary
    cross-entropy; its ``get_config`` says so.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> model = build_baseline_model(input_shape=(32, 32, 3), class_names=["a", "b", "c"])
        >>> model.class_names, model.output_shape
        (['a', 'b', 'c'], (None, 3))
        >>> model.num_classes, model.activation, model.pooling, model.dropout
        (3, 'softmax', None, 0.0)
    """

    def __init__(self, layers=None, trainable=True, name=None, *, class_names=None,
                 augmentation=None, multi_label=False):  # fmt: skip
        super().__init__(layers=layers, trainable=trainable, name=name)
        self.class_names = class_names
        self.augmentation = augmentation
        self.multi_label = bool(multi_label)
        self.class_thresholds = None

    @property
    def class_names(self) -> list[str] | None:
        """The class of each output, in order, or ``None`` when unknown."""
        return list(self._class_names) if self._class_names is not None else None

    @class_names.setter
    def class_names(self, names) -> None:
        self._class_names = None if names is None else tuple(check_class_names(names))

    @property
    def class_thresholds(self) -> list[float] | None:
        """A multi-label classifier's decision threshold per class (a class is shown when its
        probability reaches it), fitted on validation images; ``None``: 0.5 for every class."""
        return None if self._class_thresholds is None else list(self._class_thresholds)

    @class_thresholds.setter
    def class_thresholds(self, values) -> None:
        if values is None:
            self._class_thresholds = None
            return
        found = [float(v) for v in values]
        if (
            not self.multi_label
            or len(found) != self.num_classes
            or not all(0.0 <= v <= 1.0 for v in found)
        ):
            raise InvalidArgumentError(
                f"class_thresholds must be one number in 0..1 per class ({self.num_classes}) "
                f"of a multi-label classifier, got {values!r}."
            )
        self._class_thresholds = tuple(found)

    @property
    def augmentation(self) -> list[str]:
        """The names of the layers that augment images in training only.

        Unless given, the layers that
        [`is_augmentation_layer`][catdog.models.classifier.is_augmentation_layer] recognises.
        """
        if self._augmentation is None:
            return [layer.name for layer in self.layers if is_augmentation_layer(layer)]
        return list(self._augmentation)

    @augmentation.setter
    def augmentation(self, names) -> None:
        self._augmentation = None if names is None else tuple(str(n) for n in names)

    @property
    def num_classes(self) -> int:
        """The number of outputs (classes)."""
        return int(self.output_shape[-1])

    @property
    def activation(self) -> str | None:
        """The output layer's activation: ``"softmax"`` or ``"sigmoid"`` (probabilities), or
        ``None`` (logits)."""
        activation = getattr(self.layers[-1], "activation", None)
        return None if outputs_logits(self) else getattr(activation, "__name__", str(activation))

    @property
    def pooling(self) -> str | None:
        """How a transfer model pools its base's features (``"max"``, ``"avg"``), else ``None``."""
        pool = next((layer for layer in self.layers if layer.name == "global_pool"), None)
        return _POOLING.get(type(pool).__name__) if pool is not None else None

    @property
    def dropout(self) -> float:
        """The rate of the head's ``Dropout`` layer (before the dense layers), ``0`` if none."""
        head = next((layer for layer in self.layers if layer.name == "head_dropout"), None)
        return float(head.rate) if head is not None else 0.0

    def get_config(self) -> dict:
        """The ``keras.Sequential`` config with what the classifier is: its class names and
        augmentation (restored on loading) and, read from its layers (for a reader of the
        config; loading rebuilds them from the layers), ``num_classes``, ``activation``,
        ``pooling`` and ``dropout``; ``multi_label`` only for a multi-label classifier (a
        single-label one's config is as before)."""
        config = {**super().get_config(), "class_names": self.class_names,
                  "augmentation": self.augmentation, "num_classes": self.num_classes,
                  "activation": self.activation, "pooling": self.pooling,
                  "dropout": self.dropout}  # fmt: skip
        if not self.multi_label:
            return config
        return {**config, "multi_label": True, "class_thresholds": self.class_thresholds}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from ``get_config``; configs saved before a key existed load too."""
        config = {k: v for k, v in config.items() if k not in _DERIVED_CONFIG}
        class_names = config.pop("class_names", None)
        augmentation = config.pop("augmentation", [])
        multi_label = bool(config.pop("multi_label", False))
        thresholds = config.pop("class_thresholds", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.class_names, model.augmentation = class_names, augmentation
        model.multi_label, model.class_thresholds = multi_label, thresholds
        return model

    def compile(self, optimizer="rmsprop", loss="auto", **kwargs) -> None:
        """``keras.Model.compile``, where ``loss="auto"`` (the default) is the cross-entropy
        that matches the head (see
        [`classifier_loss`][catdog.models.classifier.classifier_loss]); for a multi-label
        classifier the metric ``"accuracy"`` is per-label (Keras would take the argmax)."""
        if isinstance(loss, str) and loss == "auto":
            loss = classifier_loss(self)
        if self.multi_label and "metrics" in kwargs:
            kwargs["metrics"] = [_label_wise(m) for m in kwargs["metrics"] or []]
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config: dict) -> None:
        """Compile as saved (Keras leaves a model whose ``compile`` is its own uncompiled)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)  # its saved state loads into these


def _label_wise(metric):
    """``"accuracy"`` as the share of right answers per class and photo (multi-label)."""
    if metric in ("accuracy", "acc"):
        return keras.metrics.BinaryAccuracy(name="accuracy")
    return metric


def is_multi_label(model: keras.Model) -> bool:
    """True for a multi-label catdog classifier (each class answered on its own).

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> is_multi_label(build_baseline_model(multi_label=True))
        True
    """
    return bool(getattr(model, "multi_label", False)) and isinstance(model, ImageClassifier)


_POOLING = {"GlobalMaxPooling2D": "max", "GlobalAveragePooling2D": "avg"}
# get_config keys that describe the layers and are read back from them
_DERIVED_CONFIG = ("num_classes", "activation", "pooling", "dropout")


def class_names_of(model: keras.Model) -> list[str] | None:
    """The class names a model carries (any catdog model, once built or trained), or ``None``.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> class_names_of(build_baseline_model(input_shape=(32, 32, 3), class_names=["x", "y"]))
        ['x', 'y']
    """
    return getattr(model, "class_names", None) if isinstance(model, ImageClassifier) else None


# ----------------------------------------------------------------------------- building one
def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """A factory's ``input_shape``, checked: ``(height, width, 3)`` of positive integers.

    Examples:
        >>> check_input_shape([96, 128, 3])
        (96, 128, 3)
    """
    return check_sides("input_shape", input_shape, 3, channels=3)


def check_classes(
    num_classes: int | None, class_names: Sequence[str] | None
) -> tuple[int, list[str] | None]:
    """``(number of outputs, class names or None)`` from a factory's two arguments: the
    names decide the number; without them ``num_classes`` (default 2) does.

    Examples:
        >>> check_classes(None, ["cat", "dog", "fox"])
        (3, ['cat', 'dog', 'fox'])
    """
    if class_names is None:
        return check_int("num_classes", 2 if num_classes is None else num_classes, minimum=2), None
    names = check_class_names(class_names)
    if num_classes is not None and num_classes != len(names):
        raise InvalidArgumentError(
            f"num_classes={num_classes!r} but {len(names)} class_names were given; pass one "
            "of them (num_classes follows class_names)."
        )
    return len(names), names


def check_head(
    dropout: float, dense_units: int, classifier_activation: str | None, multi_label: bool = False
) -> str | None:
    """Refuse head settings [`classifier_head`][catdog.models.classifier.classifier_head]
    cannot build: a dropout rate outside ``[0, 1)``, a non-positive number of units, an
    activation other than ``"softmax"`` or ``None``. Returns the output activation: with
    ``multi_label``, probabilities are per-class sigmoids (``"softmax"``, the factories'
    default, and ``"sigmoid"`` both give them).

    Examples:
        >>> check_head(0.2, 64, "softmax", multi_label=True)
        'sigmoid'
    """
    check_fraction("dropout", dropout)
    check_int("dense_units", dense_units)
    if multi_label and classifier_activation in ("softmax", "sigmoid", None):
        return None if classifier_activation is None else "sigmoid"
    if classifier_activation not in ("softmax", None):
        raise InvalidArgumentError(
            "classifier_activation must be 'softmax' (probabilities) or None (logits), got "
            f"{classifier_activation!r}. A sigmoid head under a sparse categorical loss, as "
            "in the original tutorial, does not give probabilities that sum to 1 (for "
            "photos that may show several classes, pass multi_label=True)."
        )
    return classifier_activation


def classifier_head(
    dropout: float, dense_units: int, num_classes: int, activation: str | None
) -> list[keras.layers.Layer]:
    """The head every catdog model ends in (fastai's ``create_head``): a ``Dropout`` named
    ``head_dropout`` (left out at ``dropout=0``), ``Flatten``, a hidden ``Dense`` (ReLU) and
    the float32 output layer ``predictions`` (``activation``: ``"softmax"`` or ``None``).

    Examples:
        >>> [layer.name for layer in classifier_head(0.2, 64, 2, "softmax")]
        ['head_dropout', 'flatten', 'dense', 'predictions']
    """
    head = [keras.layers.Dropout(dropout, name="head_dropout")] if dropout else []
    return head + [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(dense_units, activation="relu", name="dense"),
        # float32 even under a mixed precision policy: stable softmax and loss
        keras.layers.Dense(num_classes, activation=activation, name="predictions", dtype="float32"),
    ]


def classifier_from_layers(
    layer_list: list, *, name: str, class_names: Sequence[str] | None, multi_label: bool = False
) -> ImageClassifier:
    """An [`ImageClassifier`][catdog.models.classifier.ImageClassifier] of ``layer_list``
    (``keras.Input`` first) named ``name``, carrying ``class_names``; its augmentation is the
    layers that [`is_augmentation_layer`][catdog.models.classifier.is_augmentation_layer]
    recognises.

    Examples:
        >>> layers = [keras.Input((8, 8, 3)), *classifier_head(0, 4, 2, "softmax")]
        >>> classifier_from_layers(layers, name="tiny", class_names=["a", "b"]).class_names
        ['a', 'b']
    """
    augmentation = [layer.name for layer in layer_list if is_augmentation_layer(layer)]
    return ImageClassifier(layer_list, name=name, class_names=class_names,
                           augmentation=augmentation, multi_label=multi_label)  # fmt: skip


def get_base(model: keras.Model) -> keras.Model:
    """Return the pretrained base of a transfer model (the network inside its ``base`` layer).

    Examples:
        >>> from catdog.models.transfer import build_transfer_model
        >>> get_base(build_transfer_model(weights=None)).name
        'mobilenetv2_1.00_160'
    """
    try:
        return model.get_layer("base").layer
    except (ValueError, AttributeError):
        raise InvalidArgumentError(
            f"Model {model.name!r} has no pretrained base; build it with build_transfer_model."
        ) from None


def outputs_logits(model: keras.Model) -> bool:
    """Return True when the model's last layer has no activation (it outputs logits)."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation in (None, keras.activations.linear)


def classifier_loss(model: keras.Model) -> keras.losses.Loss:
    """The cross-entropy that matches the model's head: sparse categorical, or binary for a
    multi-label classifier.

    Probability heads get ``from_logits=False``, logit heads (``classifier_activation=None``)
    ``from_logits=True``: ``ImageClassifier.compile(loss="auto")`` and
    [`compile_model`][catdog.models.classifier.compile_model] use it.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> classifier_loss(build_baseline_model(classifier_activation=None)).from_logits
        True
    """
    if is_multi_label(model):
        return keras.losses.BinaryCrossentropy(from_logits=outputs_logits(model))
    return keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model))


def probabilities(model: keras.Model, outputs):
    """``model``'s ``outputs`` as float32 class probabilities: softmaxed if they are logits
    (through a sigmoid, per class, for a multi-label classifier).

    The one place where predictions, exports and evaluation turn outputs into probabilities
    (mixed precision outputs are cast to float32 first).

    Examples:
        >>> import numpy as np
        >>> from catdog.models.cnn import build_baseline_model
        >>> model = build_baseline_model(input_shape=(32, 32, 3), classifier_activation=None)
        >>> probs = probabilities(model, model(np.zeros((1, 32, 32, 3), "float32")))
        >>> float(keras.ops.sum(probs))
        1.0
    """
    outputs = keras.ops.cast(outputs, "float32")
    if not outputs_logits(model):
        return outputs
    if is_multi_label(model):
        return keras.ops.sigmoid(outputs)
    return keras.ops.softmax(outputs, axis=-1)


def compile_model(
    model: keras.Model,
    learning_rate: float = 1e-3,
    *,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """Compile with Adam, the sparse categorical loss that matches the head, and accuracy.

    The loss is [`classifier_loss`][catdog.models.classifier.classifier_loss]'s: softmax heads
    get ``from_logits=False``, logit heads (``classifier_activation=None``)
    ``from_logits=True``. Returns the model, compiled in place.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> model = compile_model(build_baseline_model(), learning_rate=1e-3)
    """
    check_positive_number("learning_rate", learning_rate)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=classifier_loss(model),
        metrics=[_label_wise("accuracy") if is_multi_label(model) else "accuracy"],
        jit_compile=jit_compile,
    )
    return model


# ----------------------------------------------------------------------------- the model
def inference_model(model: keras.Model) -> keras.Model:
    """Return a model that shares ``model``'s layers and weights but has no augmentation.

    Augmentation layers pass images through unchanged at inference, yet their random ops stay
    in traced graphs; dropping them makes exports portable (TFLite has no such ops) and
    inference faster. A catdog model drops the layers it lists as its ``augmentation``
    (see [`ImageClassifier`][catdog.models.classifier.ImageClassifier]) and keeps its class names;
    another
    ``keras.Sequential`` drops the layers that only augment in training (``RandomCrop``, which
    crops at inference, stays). Other models are returned unchanged.

    Examples:
        >>> from catdog.models.cnn import build_augmented_model
        >>> [type(l).__name__ for l in inference_model(build_augmented_model()).layers][:2]
        ['Conv2D', 'MaxPooling2D']
    """
    if not isinstance(model, keras.Sequential):
        return model
    if isinstance(model, ImageClassifier):
        dropped = set(model.augmentation)
        kept = [layer for layer in model.layers if layer.name not in dropped]
    else:
        kept = [layer for layer in model.layers if not is_augmentation_layer(layer)]
    if len(kept) == len(model.layers):
        return model
    layer_list = [keras.Input(shape=model.input_shape[1:], name="image"), *kept]
    name = f"{model.name}_inference"
    if isinstance(model, ImageClassifier):
        found = ImageClassifier(
            layer_list, name=name, class_names=model.class_names, multi_label=model.multi_label
        )
        found.class_thresholds = model.class_thresholds
        return found
    return keras.Sequential(layer_list, name=name)
