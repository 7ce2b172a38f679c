"""The table of models (timm's registry): one [`ModelSpec`][catdog.models.registry.ModelSpec]
per name, with its factory and metadata. Register with
[`register_model`][catdog.models.registry.register_model] (or, from an installed package,
the ``catdog.models`` entry-point group); list and build by name with
[`list_models`][catdog.models.registry.list_models] and
[`build_model`][catdog.models.registry.build_model]."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import keras

from catdog._rules import (
    PRECISIONS,
    check_choice,
    check_int,
    did_you_mean,
)
from catdog.errors import InvalidArgumentError

logger = logging.getLogger("catdog")

_REGISTRY: dict = {}  # name -> ModelSpec
_LOADED = False
ENTRY_POINT_GROUP = "catdog.models"
"""The entry-point group through which installed packages add models: an entry point names a
module (or an object in it) whose import registers its models with
[`register_model`][catdog.models.registry.register_model], under new names: a plugin that
registers a name already taken (``baseline``, ``transfer``, another plugin's) is left out, as is
one whose import fails, with a warning naming it."""


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its factory and what is known about it (timm's ``default_cfgs``).

    Callers ask the spec, never the name: whether a model has a pretrained base (it can cache
    frozen features and fine-tune), its default input size, its size and its published
    accuracy.

    Attributes:
        name: the registered name.
        factory: the function that builds it (keyword arguments as documented there).
        family: ``"cnn"`` for the tutorial's CNNs, the ``keras.applications`` module of a
            pretrained backbone (``"efficientnet_v2"``), or ``"custom"``.
        input_size: the default input side (``build_model`` and ``catdog train`` use it when
            no size is given), or ``None`` to leave it to the factory.
        pretrained: whether it has a pretrained base (built with ``weights=``).
        params: the parameters of its two-class model at the defaults, if known.
        top1: the ImageNet top-1 accuracy (%) published for its backbone, if any.
        description: one line for model tables.
        arguments: the keyword arguments its factory takes (declared at registration, or read
            once from the factory's signature); see ``takes_class_names``.
        preset_of: the registered model it is a preset of (the same factory with some
            arguments set, see [`register_preset`][catdog.models.registry.register_preset]),
            or ``None``.
    """

    name: str
    factory: Callable[..., keras.Model]
    family: str = "custom"
    input_size: int | None = None
    pretrained: bool = False
    params: int | None = None
    top1: float | None = None
    description: str = ""
    arguments: tuple[str, ...] = ()
    preset_of: str | None = None

    @property
    def takes_class_names(self) -> bool:
        """Whether its factory takes ``class_names`` (so the built model carries them)."""
        return "class_names" in self.arguments


def register_model(
    name: str | None = None,
    *,
    family: str = "custom",
    input_size: int | None = None,
    pretrained: bool = False,
    params: int | None = None,
    top1: float | None = None,
    description: str | None = None,
    arguments: Iterable[str] | None = None,
    preset_of: str | None = None,
) -> Callable:
    """Decorator that adds a model factory to the registry under ``name``, with its metadata.

    The name defaults to the factory's (``build_tiny_model`` -> ``"tiny"``), the description
    to its docstring's first line, ``arguments`` to the names in the factory's signature (read
    once, here; declare them when the factory passes ``**kwargs`` on); the other arguments are
    the [`ModelSpec`][catdog.models.registry.ModelSpec] fields.

    Args:
        name: the registered name.
        family: see [`ModelSpec`][catdog.models.registry.ModelSpec], as are the rest.
        input_size: the default input side.
        pretrained: whether it has a pretrained base.
        params: its parameter count at the defaults.
        top1: its backbone's published ImageNet top-1 accuracy (%).
        description: one line for model tables.
        arguments: the keyword arguments the factory takes.
        preset_of: the registered model it is a preset of.

    Examples:
        ```python
        @register_model("tiny", input_size=32)
        def build_tiny_model(input_shape=(32, 32, 3), num_classes=2, **kwargs):
            ...
        ```
    """
    if input_size is not None:
        check_int("input_size", input_size)

    def decorator(factory: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or factory.__name__.removeprefix("build_").removesuffix("_model")
        doc = (factory.__doc__ or "").strip()
        _REGISTRY[key] = ModelSpec(
            key, factory, family, input_size, bool(pretrained), params, top1,
            description if description is not None else (doc.splitlines() or [""])[0],
            tuple(arguments) if arguments is not None else _signature_names(factory),
            preset_of,
        )  # fmt: skip
        return factory

    return decorator


def register_preset(
    name: str,
    of: str,
    settings: dict,
    *,
    input_size: int | None = None,
    description: str | None = None,
) -> None:
    """Register ``name`` as a preset of the registered model ``of``: the same factory with
    ``settings`` as its new defaults (callers can still override them) and the same metadata,
    but for ``input_size`` and ``description`` when given. Its spec's ``preset_of`` is ``of``.

    Examples:
        ```python
        register_preset("transfer", "mobilenet_v2", {"name": "transfer"}, input_size=160)
        build_model("transfer", backbone="resnet50")  # settings are only defaults
        ```
    """
    if of not in _REGISTRY:  # not model_spec: presets register while the table loads
        raise InvalidArgumentError(f"Register {of!r} before its preset {name!r}.")
    base = _REGISTRY[of]
    unknown = sorted(set(settings) - set(base.arguments))
    if unknown:
        raise InvalidArgumentError(
            f"The preset {name!r} sets {unknown}, which the factory of {of!r} does not take; "
            f"it takes {sorted(base.arguments)}."
        )
    if input_size is not None:
        check_int("input_size", input_size)
    _REGISTRY[name] = dataclasses.replace(
        base, name=name, factory=functools.partial(base.factory, **settings), preset_of=of,
        input_size=base.input_size if input_size is None else input_size,
        description=base.description if description is None else description,
    )  # fmt: skip


def _signature_names(factory: Callable) -> tuple[str, ...]:
    """The parameter names of ``factory`` (none when Python cannot read its signature)."""
    try:
        return tuple(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return ()


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``, or an error naming the close matches.

    Examples:
        >>> spec = model_spec("efficientnet_v2_b0")
        >>> spec.family, spec.input_size, spec.pretrained, spec.top1
        ('efficientnet_v2', 224, True, 78.7)
    """
    if name not in _entries():
        raise InvalidArgumentError(
            f"Unknown model {name!r}.{did_you_mean(name, _entries())} catdog.list_models() "
            "names them all; `catdog models` prints them with their sizes and accuracies."
        )
    return _REGISTRY[name]


def list_models(pattern: str = "*", *, pretrained: bool | None = None) -> list[str]:
    """The sorted names of registered models that match a shell-style ``pattern``.

    ``pretrained=True`` (or ``False``) keeps only models with (without) a pretrained base.

    Examples:
        >>> list_models("*ed")
        ['augmented', 'preprocessed']
        >>> list_models("efficientnet_v2*")[:3]
        ['efficientnet_v2_b0', 'efficientnet_v2_b1', 'efficientnet_v2_b2']
        >>> len(list_models(pretrained=True))
        42
    """
    return sorted(
        n
        for n, spec in _entries().items()
        if fnmatch.fnmatchcase(n, pattern) and pretrained in (None, spec.pretrained)
    )


def models_table(pattern: str = "*") -> str:
    """The registered models matching ``pattern`` as the table ``catdog models`` prints: name,
    family, input side, parameters, ImageNet top-1 and description.

    Examples:
        >>> print(models_table("baseline").splitlines()[0].split())
        ['name', 'family', 'input', 'parameters', 'top-1', 'description']
    """
    lines = [f"{'name':<21}{'family':<20}{'input':>6}{'parameters':>13}{'top-1':>7}  description"]
    for name in list_models(pattern):
        spec = model_spec(name)
        params = f"{spec.params:,}" if spec.params else "?"
        top1 = f"{spec.top1:.1f}" if spec.top1 else "-"
        size = spec.input_size or "-"
        preset = f"(preset of {spec.preset_of}) " if spec.preset_of else ""
        lines.append(
            f"{name:<21}{spec.family:<20}{size:>6}{params:>13}{top1:>7}  {preset}{spec.description}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def precision_scope(precision: str | None):
    """Build layers under a Keras dtype policy, restoring the previous one afterwards.

    ``"mixed_bfloat16"``/``"mixed_float16"`` compute in 16 bits with float32 weights; catdog's
    output layer stays float32. Keras adds loss scaling for ``mixed_float16`` at compile time.

    Examples:
        >>> from catdog.models.cnn import build_baseline_model
        >>> with precision_scope("mixed_bfloat16"):
        ...     model = build_baseline_model()
    """
    if precision is None:
        yield
        return
    check_choice("precision", precision, PRECISIONS)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(name: str, *, precision: str | None = None, **kwargs) -> keras.Model:
    """Build the registered model ``name`` with the factory's keyword arguments.

    Without ``input_shape``, the model is built at its spec's default input size
    ([`ModelSpec.input_size`][catdog.models.registry.ModelSpec]). ``precision`` (``"float32"``,
    ``"mixed_bfloat16"``, ``"mixed_float16"``) sets the dtype policy of the model's layers;
    see [`precision_scope`][catdog.models.registry.precision_scope].

    Examples:
        >>> build_model("baseline", input_shape=(96, 96, 3), num_classes=3).output_shape
        (None, 3)
        >>> build_model("efficientnet_v2_b0", weights=None, num_classes=5).input_shape
        (None, 224, 224, 3)
    """
    spec = model_spec(name)
    if spec.input_size is not None:
        kwargs.setdefault("input_shape", (spec.input_size, spec.input_size, 3))
    with precision_scope(precision):
        return spec.factory(**kwargs)


def factory_parameters(name: str) -> set[str]:
    """The keyword arguments that the factory of the registered model ``name`` takes (its
    spec's [`arguments`][catdog.models.registry.ModelSpec]).

    Examples:
        >>> "class_names" in factory_parameters("transfer")
        True
    """
    return set(model_spec(name).arguments)


def describe_model(name: str) -> str:
    """A one-line description of the registered model ``name``.

    Examples:
        >>> describe_model("baseline")
        "The tutorial's model 1: two Conv2D+MaxPooling blocks and a dense head, no augmentation."
    """
    return model_spec(name).description


def check_model_name(name: str) -> str:
    """Return ``name`` if it is registered, else raise an error naming the close matches."""
    return model_spec(name).name


def _entries() -> dict:
    """The registry, with installed plugins' models loaded on first use (catdog's own
    register when ``catdog.models`` is imported: its ``__init__`` imports their modules)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True  # before the plugins: their own lookups must not load them again
        _load_plugins()
    return _REGISTRY


def _load_plugins() -> None:
    """Import the modules that installed packages name in the ``catdog.models`` entry points.

    A plugin that fails to import (any exception, ``sys.exit()`` too) or that registers a name
    already taken (catdog's own models, an earlier plugin's) is left out whole, with a warning
    naming it: the registry is as it was before its import.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        before = dict(_REGISTRY)
        try:
            entry.load()
            _check_names_are_new(before)
        except (Exception, SystemExit) as error:  # a broken plugin must not break catdog
            _REGISTRY.clear()
            _REGISTRY.update(before)
            logger.warning(
                "The catdog model plugin %r (%s) could not be loaded and is left out: %s: %s",
                entry.name, entry.value, type(error).__name__, error,
            )  # fmt: skip


def _check_names_are_new(before: dict) -> None:
    """Refuse a plugin that replaced a model registered ``before`` its import (a clash)."""
    taken = sorted(name for name, spec in before.items() if _REGISTRY.get(name) is not spec)
    if taken:
        raise InvalidArgumentError(
            f"it registers {', '.join(map(repr, taken))}, a name catdog (or another plugin) "
            "already uses; the plugin must give its models new names"
        )
