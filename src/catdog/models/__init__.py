"""The model zoo: one table of model specs (`registry`), the classifier every catdog model is
(`classifier`), the tutorial's CNNs (`cnn`), transfer models on the 40 `keras.applications`
backbones (`transfer`, `backbones`), few-shot class prototypes (`prototypes`), their layers
(`layers`), how sure a model is (`confidence`: calibration and the unknown answer inside the
model), saving and loading `.keras` files (`saving`) and offline stand-in weights
(`weights`). Nothing here imports training, data or runs.

As in timm, the registry knows no model file: importing the package imports the modules that
define catdog's own models, whose factories register themselves (installed plugins' models
load on the registry's first lookup)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)

# they register catdog's models
from catdog.models import cnn, prototypes, transfer  # noqa: E402, F401
