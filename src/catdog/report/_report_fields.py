"""The checks that read a report back from JSON (``Report.from_dict``): every field, its
type and shape, with one error naming the file and the field."""

from __future__ import annotations

import json

from catdog._rules import is_int
from catdog.errors import InvalidArgumentError

_MISSING = object()


def _bad_field(source: str, name: str, expected: str, value=None, missing: bool = False):
    shown = "it is missing" if missing else f"got {_json_text(value)[:60]}"
    return InvalidArgumentError(
        f"{source}: field {name!r} must be {expected}, {shown}. Restore the file, or write it "
        "again (catdog train, or catdog evaluate --out)."
    )


def _json_text(value) -> str:
    """``value`` as JSON text (how it looks in the file), for error messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def checked_report_fields(data, source: str) -> dict:
    """The fields of a report dict, checked; ``per_class`` and ``misclassified`` stay plain
    dicts (see ``Report.from_dict``)."""
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"{source} does not hold a report (a JSON object). Restore the file, or write it "
            "again (catdog train, or catdog evaluate --out)."
        )
    get = _field_reader(data, source)
    names = get("class_names", _is_class_names, "a list of class names")
    n = len(names)
    values = {
        "loss": get("loss", lambda v: v is None or _is_number(v), "a number or null"),
        "accuracy": get("accuracy", _is_number, "a number"),
        "baseline": get("baseline", _is_number, "a number"),
        "class_names": names,
        "count": get("count", lambda v: is_int(v, minimum=0), "an integer >= 0", 0),
        "engine": get("engine", lambda v: v is None or isinstance(v, str), "a string", None),
        "data": get("data", lambda v: v is None or isinstance(v, str), "a string", None),
    }
    values["loss"] = float("nan") if values["loss"] is None else values["loss"]
    per_class = get(
        "per_class",
        lambda v: _is_per_class(v, names),
        "an object of precision, recall, f1 and support per class, in class_names order",
    )
    values["per_class"] = per_class
    values["confusion"] = get(
        "confusion",
        lambda v: _is_confusion(v, n),
        f"a {n}x{n} list of counts (one row per class)",
    )
    misclassified = get(
        "misclassified",
        _is_misclassified_list,
        "a list of {path, true, predicted, confidence}",
        [],
    )
    values["misclassified"] = misclassified
    return {**values, **_confidence_fields(get)}


def _confidence_fields(get) -> dict:
    """The unknown answer, risk-coverage, calibration and timings fields (``None`` in older
    reports)."""
    return {
        "unknown": get(
            "unknown",
            _is_unknown,
            "null or an object of method, threshold, accepted and accepted_correct",
            None,
        ),
        "risk_coverage": get(
            "risk_coverage",
            lambda v: v is None or _is_pairs(v),
            "null or a list of [coverage, risk] pairs",
            None,
        ),
        "calibration": get(
            "calibration", lambda v: v is None or isinstance(v, dict), "null or an object", None
        ),
        "timings": get(
            "timings",
            lambda v: v is None or (isinstance(v, dict) and all(map(_is_number, v.values()))),
            "null or an object of seconds per phase",
            None,
        ),
    }


def _is_unknown(value) -> bool:
    """``None``, or ``{method, threshold, accepted, accepted_correct}``."""
    return value is None or (
        isinstance(value, dict)
        and set(value) == {"method", "threshold", "accepted", "accepted_correct"}
        and isinstance(value["method"], str)
        and _is_number(value["threshold"])
        and is_int(value["accepted"], minimum=0)
        and is_int(value["accepted_correct"], minimum=0)
    )


def _is_pairs(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(_is_number(x) for x in p) for p in value
    )


def _field_reader(data: dict, source: str):
    """``get(name, check, expected, default)``: ``data[name]`` if ``check`` accepts it, else
    raise naming ``source`` and the field; ``default`` (when given) for a missing field."""

    def get(name: str, check, expected: str, default=_MISSING):
        if name not in data:
            if default is _MISSING:
                raise _bad_field(source, name, expected, missing=True)
            return default
        if not check(data[name]):
            raise _bad_field(source, name, expected, data[name])
        return data[name]

    return get


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_class_names(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(n, str) for n in value)


def _is_per_class(value, names: list) -> bool:
    """A ``{class: {precision, recall, f1, support}}`` object in ``names`` order."""
    return (
        isinstance(value, dict)
        and list(value) == names
        and all(
            isinstance(m, dict)
            and set(m) == {"precision", "recall", "f1", "support"}
            and all(_is_number(m[k]) for k in ("precision", "recall", "f1"))
            and is_int(m["support"], minimum=0)
            for m in value.values()
        )
    )


def _is_confusion(value, n: int) -> bool:
    """An ``n`` by ``n`` list of counts."""
    return (
        isinstance(value, list)
        and len(value) == n
        and all(
            isinstance(row, list) and len(row) == n and all(is_int(c, minimum=0) for c in row)
            for row in value
        )
    )


def _is_misclassified_list(value) -> bool:
    """A list of ``{path, true, predicted, confidence}`` objects."""
    return isinstance(value, list) and all(
        isinstance(m, dict)
        and set(m) == {"path", "true", "predicted", "confidence"}
        and (m["path"] is None or isinstance(m["path"], str))
        and isinstance(m["true"], str)
        and isinstance(m["predicted"], str)
        and _is_number(m["confidence"])
        for m in value
    )
