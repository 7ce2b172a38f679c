"""``argparse`` types: the text of a command-line option -> the value of a setting.

Each raises ``argparse.ArgumentTypeError``, which ``argparse`` prints as one usage error.
[`RunConfig`][catdog.runs.config.RunConfig]'s fields name them in their metadata (the
``catdog train`` options are made from it); ``catdog tune`` and the example scripts use them
too (``catdog.cli`` re-exports them).
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``argparse`` type: a positive integer (also used by the example scripts)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def seconds(text: str) -> float:
    """``argparse`` type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def learning_rate(text: str) -> float | str:
    """``--learning-rate``: a number, or ``auto`` (the learning-rate finder)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def layer_position(text: str) -> float | int | str:
    """``--unfreeze-from``: a fraction (``0.65``), a layer index (``100``) or a layer name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def weights(text: str) -> str | None:
    """``--weights``: ``none`` (random initialisation) is ``None``; anything else as given."""
    return None if text.lower() == "none" else text


def coverage(text: str) -> float | None:
    """``--unknown-coverage``: a share in (0, 1) such as ``0.99``, or ``off`` (``None``)."""
    if text.lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a share in (0, 1) such as 0.99, or off; got {text!r}"
        )
    return value


JIT_CHOICES = {"auto": "auto", "true": True, "false": False}
JIT_METAVAR = "{" + ",".join(JIT_CHOICES) + "}"


def jit_compile(text: str) -> bool | str:
    """``--jit-compile``: ``auto``, ``true`` or ``false`` -> ``"auto"``, ``True``, ``False``."""
    if text not in JIT_CHOICES:
        choices = ", ".join(map(repr, JIT_CHOICES))
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices})")
    return JIT_CHOICES[text]
