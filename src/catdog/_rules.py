"""One home for catdog's defaults and argument rules; every module imports them from here.

A rule written twice drifts apart: the checks below raise
[`InvalidArgumentError`][catdog.errors.InvalidArgumentError] with one wording everywhere.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np

from catdog.errors import InvalidArgumentError, OutputError

DEFAULT_IMAGE_SIDE = 160
"""The square side of the cats_and_dogs_filtered recipe's images, in pixels."""
DEFAULT_IMAGE_SIZE = (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE)
DEFAULT_INPUT_SHAPE = (DEFAULT_IMAGE_SIDE, DEFAULT_IMAGE_SIDE, 3)
DEFAULT_SEED = 1337
"""The split (and search) seed used when none is given."""
DEFAULT_BATCH_SIZE = 32
DEFAULT_UNFREEZE_FROM = 0.65
"""Fine-tuning unfreezes the top 35% of a base's layers: from layer 100 of MobileNetV2's 154,
the tutorial's choice, and the same share of any other backbone."""
SPLIT_NAMES = ("train", "validation", "test")
EXPORT_FORMATS = ("keras", "tf_saved_model", "litert", "onnx")  # Keras' names
EXPORT_FORMAT_ALIASES = {"saved_model": "tf_saved_model", "tflite": "litert"}
EXPORT_QUANTIZATIONS = (None, "float16", "dynamic")  # LiteRT's: float32, float16, int8 weights
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
ENGINES = ("tensorflow", "litert", "auto")
"""Where prediction runs: see [`Predictor`][catdog.deploy.predict.Predictor]."""
STRATEGIES = ("none", "mirrored", "multi_worker")
"""Where training runs: see [`make_strategy`][catdog.training.distribute.make_strategy]."""
DEFAULT_CLUSTER_TIMEOUT = 300.0
"""Seconds a worker waits for the other workers of its cluster (or a tuning worker for the
oracle) to answer before it stops: see
[`wait_for_peers`][catdog.training.cluster.wait_for_peers]."""
DEFAULT_COVERAGE = 0.98
"""The share of in-distribution images the ``unknown`` threshold accepts unless told otherwise:
at most 2% of photos like the training photos answered unknown (measured on real photos,
benchmarks/bench_unknown.py)."""
TUNERS = ("random", "hyperband", "bayesian")
"""KerasTuner's search algorithms that [`tune`][catdog.training.tuning.tune] runs."""
TUNING_FAMILIES = ("baseline", "augmented", "preprocessed", "transfer")
"""The registered models a search covers unless ``families=`` is given: see
[`CatDogHyperModel`][catdog.training.search_space.CatDogHyperModel]."""
TUNING_BACKBONES = ("mobilenet_v2", "efficientnet_b0", "mobilenet_v3_small")
"""The ``backbone`` choices of a search's ``transfer`` model unless ``backbones=`` is given."""


def check_choice(name: str, value, choices: Iterable, *, hint: str = ""):
    """Return ``value`` if it is one of ``choices``; else raise naming them and the close ones.

    ``hint`` (a sentence) is appended to the message.

    Examples:
        >>> check_choice("tuner", "random", TUNERS)
        'random'
        >>> check_choice("tuner", "hyperbnd", TUNERS)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: tuner must be one of 'random', 'hyperband' or \
'bayesian', got 'hyperbnd'. Did you mean 'hyperband'?
    """
    choices = tuple(choices)
    if value in choices:
        return value
    words = [repr(c) for c in choices]
    options = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    close = (
        did_you_mean(value, [c for c in choices if isinstance(c, str)])
        if isinstance(value, str)
        else ""
    )
    raise InvalidArgumentError(
        f"{name} must be one of {options}, got {value!r}.{close}{' ' + hint if hint else ''}"
    )


def check_strategy(name: str | None) -> None:
    """Raise unless ``name`` is one of ``STRATEGIES`` or ``None`` (the default choice)."""
    check_choice(
        "strategy", name, (*STRATEGIES, None), hint="None: mirrored when several GPUs are visible."
    )


def has_control_characters(text: str) -> bool:
    """True when ``text`` holds a character that is not visible text: a control, format,
    surrogate, private-use or unassigned one (Unicode category ``C*``: a newline, a tab, a
    right-to-left override, an undecodable byte of a file name) or a line or paragraph
    separator. The zero-width joiners of emoji and of some scripts are allowed.

    Examples:
        >>> has_control_characters("cats"), has_control_characters("a\\nb")
        (False, True)
    """
    return any(
        (unicodedata.category(c).startswith("C") and c not in "\u200c\u200d") or c in "\u2028\u2029"
        for c in text
    )


UNKNOWN = "unknown"
"""The answer for an image past a model's unknown threshold: no class may have this name."""


def check_printable_class_names(names: Iterable) -> None:
    """Raise unless every string in ``names`` is free of control characters (see
    ``has_control_characters``): class names go one a line into labels files, and into
    reports and model cards; and unless none is ``unknown`` (any case), the answer for an
    image like no class, which a class of that name could not be told apart from.

    Examples:
        >>> check_printable_class_names(["cats", "Unknown"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: The class name 'Unknown' is catdog's answer for ...
    """
    for name in names:
        if isinstance(name, str) and name.casefold() == UNKNOWN:
            raise InvalidArgumentError(
                f"The class name {name!r} is catdog's answer for an image like none of the "
                "classes, and a class of that name could not be told apart from it: rename that "
                "class (its folder), e.g. to 'other'."
            )
        if isinstance(name, str) and has_control_characters(name):
            raise InvalidArgumentError(
                f"The class name {name!r} holds a control character (a line break, tab or "
                "similar), which would break labels files and reports; use a name of printable "
                "characters."
            )


def check_class_names(names, source: str = "class_names") -> list[str]:
    """``names`` as a list if it holds at least two distinct, non-empty strings of printable
    characters; else a one-line error naming ``source`` (where the names came from). The one
    rule for class names: model factories, ``--class-names``, labels files, class_names.json.

    Examples:
        >>> check_class_names(("cats", "dogs"))
        ['cats', 'dogs']
        >>> check_class_names(["cats", "cats"], "--class-names")
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: --class-names names 'cats' more than once: class names must be distinct, one for each of the model's outputs, in their order.
    """  # noqa: E501
    values = list(names) if isinstance(names, (list, tuple)) else None
    if values is None or len(values) < 2 or not all(isinstance(n, str) and n for n in values):
        raise InvalidArgumentError(
            f"{source} must list at least two class names (non-empty strings), got {names!r}."
        )
    twice = sorted({n for n in values if values.count(n) > 1})
    if twice:
        raise InvalidArgumentError(
            f"{source} names {', '.join(map(repr, twice))} more than once: class names must be "
            "distinct, one for each of the model's outputs, in their order."
        )
    check_printable_class_names(values)
    return values


def is_int(value, minimum: int = 1) -> bool:
    """True for an ``int`` (not a ``bool``) of at least ``minimum``."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


def is_number_in(value, low: float, high: float, *, high_included: bool) -> bool:
    """True for an ``int``/``float`` (not a ``bool``) in ``[low, high]`` or ``[low, high)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return low <= value <= high if high_included else low <= value < high


def is_positive_number(value) -> bool:
    """True for a finite ``int``/``float`` (not a ``bool``) above 0."""
    return is_number_in(value, 0, float("inf"), high_included=False) and value > 0


def check_coverage(name: str, value):
    """Return ``value`` if it is ``None`` (no ``unknown`` answer) or a share in (0, 1)."""
    if value is not None and not (is_number_in(value, 0, 1, high_included=False) and value > 0):
        raise InvalidArgumentError(
            f"{name} must be a share of validation images in (0, 1), such as 0.99, or None (no "
            f"unknown answer); got {value!r}."
        )
    return value


def check_positive_number(name: str, value):
    """Return ``value`` if it is a finite number above 0; else raise a clear error."""
    if not is_positive_number(value):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}.")
    return value


def expected_int(minimum: int = 1) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; else raise a clear error."""
    if not is_int(value, minimum):
        raise InvalidArgumentError(f"{name} must be {expected_int(minimum)}, got {value!r}.")
    return value


def check_fraction(
    name: str, value, *, high: float = 1.0, high_included: bool = False, optional: bool = False
):
    """Return ``value`` if it is a number in ``[0, high)`` (or ``[0, high]``); else raise.

    With ``optional=True`` ``None`` is accepted too (a layer left out).
    """
    if optional and value is None:
        return value
    if not is_number_in(value, 0, high, high_included=high_included):
        interval = f"[0, {high:g}{']' if high_included else ')'}"
        leave_out = " (or None to leave it out)" if optional else ""
        raise InvalidArgumentError(
            f"{name} must be a number in {interval}{leave_out}, got {value!r}."
        )
    return value


def check_sides(name: str, value, length: int, *, channels: int | None = None) -> tuple:
    """Return ``value`` as a tuple of ``length`` positive integers (the last = ``channels``)."""
    sides = tuple(value) if isinstance(value, (tuple, list)) else None
    if (
        sides is None
        or len(sides) != length
        or not all(is_int(d) for d in sides)
        or (channels is not None and sides[-1] != channels)
    ):
        shape = "(height, width)" if length == 2 else "(height, width, 3)"
        rgb = ": positive integers and 3 RGB channels" if channels else " of positive integers"
        raise InvalidArgumentError(f"{name} must be {shape}{rgb}, got {value!r}.")
    return sides


def monitor_mode(monitor: str) -> str:
    """``"min"`` for a loss, ``"max"`` for any other metric (accuracy...)."""
    return "min" if "loss" in monitor else "max"


def history_dict(history) -> dict:
    """The per-epoch metrics of a Keras ``History`` or of a plain dict (or ``None``)."""
    return dict(history.history if hasattr(history, "history") else history or {})


def did_you_mean(name, known) -> str:
    """``" Did you mean 'a' or 'b'?"`` for the close matches of ``name`` in ``known``, or ``""``.

    Examples:
        >>> did_you_mean("resnet5", ["resnet50", "resnet101", "vgg16"])
        " Did you mean 'resnet50' or 'resnet101'?"
        >>> did_you_mean("alexnet", ["resnet50", "vgg16"])
        ''
    """
    import difflib

    close = [repr(n) for n in difflib.get_close_matches(str(name), list(known), n=3)]
    if not close:
        return ""
    options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" Did you mean {options}?"


def check_output_folder(option: str, path, *, data=None) -> None:
    """Refuse an output folder that cannot be one (a file, or under a file), or that lies
    inside the ``data`` folder the command reads (see ``check_outside_data``), before any work.

    ``None`` (not given) passes.

    Examples:
        >>> check_output_folder("--tensorboard", "/dev/null")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.OutputError: --tensorboard '/dev/null' is a file, not a folder; ...
    """
    import os

    if path is None or path == "":
        return
    path = os.fspath(path)
    here = path
    while here and not os.path.exists(here):
        parent = os.path.dirname(here)
        here = parent if parent != here else ""
    if here and not os.path.isdir(here):
        where = "is a file" if here == path else f"is under the file {here!r}"
        raise OutputError(
            f"{option} {path!r} {where}, not a folder; pass a folder (it is created if missing)."
        )
    check_outside_data(option, path, data)


def check_outside_data(option: str, path, data) -> None:
    """Refuse an output path inside a data folder the command reads, before any work: the
    files written there would join the user's data (a report folder becomes a class).

    ``None`` (not given) passes; ``data`` is one folder or file, or several.

    Examples:
        >>> import tempfile
        >>> data = tempfile.mkdtemp()
        >>> check_outside_data("--out", f"{data}/audit", data)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.OutputError: --out '.../audit' is inside the data folder '...'; ...
    """
    import os

    if path is None or path == "" or data is None:
        return
    output = os.path.realpath(os.fspath(path))
    for source in [data] if isinstance(data, (str, os.PathLike)) else data:
        if not os.path.isdir(source):
            continue
        folder = os.path.realpath(os.fspath(source))
        where = {folder: "is inside", output: "holds"}.get(os.path.commonpath([output, folder]))
        if where:
            raise OutputError(
                f"{option} {os.fspath(path)!r} {where} the data folder {os.fspath(source)!r}; "
                "what catdog writes there would mix with your data: choose a folder apart "
                "from it."
            )


def already_exists(path, command: str, replaced: str = "it") -> OutputError:
    """The error for an output ``path`` that exists, given without ``overwrite``: one wording
    for every command that refuses to replace a file (``catdog export``, ``catdog predict``).

    Examples:
        >>> print(already_exists("p.csv", "predict"))
        'p.csv' already exists. Choose a new path, or pass overwrite=True (catdog predict --overwrite) to replace it.
    """  # noqa: E501
    return OutputError(
        f"{str(path)!r} already exists. Choose a new path, or pass overwrite=True "
        f"(catdog {command} --overwrite) to replace {replaced}."
    )


def is_unknown(scores, threshold: float) -> np.ndarray:
    """Where ``scores`` are past ``threshold``: above it, or not a number (NaN is never
    within a threshold). The one rule behind every ``unknown`` answer catdog gives.

    Examples:
        >>> is_unknown([0.2, 0.9, float("nan")], 0.5).tolist()
        [False, True, True]
    """
    return ~(np.asarray(scores, dtype=np.float32) <= np.float32(threshold))


def check_finite_threshold(threshold, source: str) -> None:
    """Refuse an unknown threshold that is not a finite number (``None``: no threshold).

    Examples:
        >>> check_finite_threshold(float("nan"), "model.tflite")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: 'model.tflite' has an unknown threshold of nan, ...
    """
    if threshold is not None and not np.isfinite(float(threshold)):
        raise InvalidArgumentError(
            f"{source!r} has an unknown threshold of {threshold}, not a finite number: the file "
            "is damaged or was edited. Calibrate the model again (catdog.calibrate) and export "
            "it again."
        )


def check_single_label_data(splits, what: str) -> None:
    """Refuse multi-label data (``Splits`` read from a labels file) where only one class per
    image is supported, pointing to the multi-label tools.

    Examples:
        >>> check_single_label_data(object(), "evaluate")  # not multi-label: nothing to say
    """
    if getattr(splits, "multi_label", False) is True:
        raise InvalidArgumentError(
            f"{what} takes one class per image, but this data gives each image several (a "
            "labels file): use catdog.report.multilabel_evaluation.evaluate_multilabel and a "
            "model built with multi_label=True."
        )


def check_single_label(model, what: str, instead: str = "") -> None:
    """Refuse a multi-label model (one whose ``multi_label`` is true) where only single-label
    ones are supported yet, naming ``what`` and what works instead (``instead``, else the
    multi-label scoring and thresholds).

    Examples:
        >>> check_single_label(object(), "catdog predict")  # not multi-label: nothing to say
    """
    if getattr(model, "multi_label", False) is True:
        raise InvalidArgumentError(
            f"{what} does not support multi-label models yet: "
            + (
                instead
                or "for them, use catdog.report.multilabel_evaluation.evaluate_multilabel "
                "(scores) and catdog.training.class_thresholds.set_class_thresholds (decisions)."
            )
        )
