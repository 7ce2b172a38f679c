"""Submodules that load on first use: ``catdog.training.tuning`` without importing it first."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def submodule_loader(package: str) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``package.NAME`` when ``NAME`` is first used.

    Examples:
        >>> __getattr__ = submodule_loader("catdog.models")
        >>> __getattr__("registry").__name__
        'catdog.models.registry'
    """

    def __getattr__(name: str) -> object:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise  # a dependency of that module is missing: say so
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
