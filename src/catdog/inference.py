"""Fast inference: one compiled function per model, without ``model.predict``'s overhead.

``model.predict`` builds a data pipeline and a progress bar on every call, which dominates
for a handful of images. [`Predictor`][catdog.inference.Predictor] traces the model once (without
its augmentation layers, which do nothing at inference) and then runs batches of any size directly.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from catdog.errors import InvalidArgumentError
from catdog.models import inference_model, outputs_logits

_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Predictor:
    """Class probabilities from a model, fast for small batches.

    Examples:
        ```python
        predictor = Predictor(model)
        predictor(images).shape
        # (1, 2)
        ```
    """

    def __init__(self, model: keras.Model, *, jit_compile: bool = False):
        import tensorflow as tf

        self.model = model
        self.input_shape = tuple(model.input_shape[1:])
        without_augmentation = inference_model(model)
        logits = outputs_logits(model)

        def run(images):
            out = tf.cast(without_augmentation(images, training=False), tf.float32)
            return tf.nn.softmax(out) if logits else out

        spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        self._run = tf.function(run, input_signature=[spec], jit_compile=jit_compile)

    def __call__(self, images) -> np.ndarray:
        array = np.asarray(images, dtype=np.float32)
        if array.ndim == len(self.input_shape):
            array = array[None]
        if array.shape[1:] != self.input_shape:
            raise InvalidArgumentError(
                f"images must have shape (n, {', '.join(map(str, self.input_shape))}), "
                f"got {array.shape}."
            )
        return self._run(array).numpy()


def predictor_for(model: keras.Model) -> Predictor:
    """The cached [`Predictor`][catdog.inference.Predictor] of ``model``, made on first use."""
    predictor = _PREDICTORS.get(model)
    if predictor is None:
        predictor = _PREDICTORS[model] = Predictor(model)
    return predictor
