"""Deprecated: the measures of calibration moved to
[`catdog.report.reliability`][catdog.report.reliability] (this module name clashed with
[`catdog.training.calibration`][catdog.training.calibration], which fits calibration). Every
name still resolves here, with a ``DeprecationWarning``, until 0.4.0 at the earliest."""

from __future__ import annotations

import importlib
import warnings


def __getattr__(name: str) -> object:
    reliability = importlib.import_module("catdog.report.reliability")
    if name.startswith("__") or not hasattr(reliability, name):
        raise AttributeError(f"module 'catdog.report.calibration' has no attribute {name!r}")
    warnings.warn(
        f"catdog.report.calibration.{name} moved: import it from catdog.report.reliability "
        "(the old module goes no earlier than 0.4.0).",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(reliability, name)
