"""Images in, datasets out: finding and splitting files (`files`), decoding images (`images`;
an animated GIF's first frame: `gif`; with Pillow, without TensorFlow: `pillow_decode`),
decoding a split once and caching it (`decode_cache`), tf.data pipelines (`pipelines`),
exclusions and relabelling (`exclusions`, `relabel`), labels files of photos with several
answers (`label_table`) and their datasets (`multilabel`), downloading (`download`), the
tutorial's dataset (`datasets`) and generated images (`synthetic`). Nothing here imports
training or deploy."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
