"""The model zoo: one table of model specs (`registry`), the classifier every catdog model is
(`classifier`), the tutorial's CNNs (`cnn`), transfer models on the 40 `keras.applications`
backbones (`transfer`, `backbones`), their layers (`layers`) and offline stand-in weights
(`weights`). Nothing here imports training, data or runs."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
