"""A review page: one self-contained HTML file (thumbnails inside, no server, works offline)
where a person goes through what catdog flagged (an audit's findings, or the unknown and
unsure rows of a predictions file), decides per image with mouse or keyboard (keep, exclude,
relabel as a class), and saves the decisions as ``decisions.json``: ``catdog train --exclude``
reads its ``exclude`` list and ``--relabel`` its ``relabel`` map. Nothing on disk changes.

Every name on the page (classes, files, reasons) is user data: it travels as JSON in a
``<script type="application/json">`` block and is put on the page as text, never as HTML.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from catdog.data.images import image_size_problem
from catdog.errors import InputFileNotFoundError, InvalidArgumentError
from catdog.io import atomic_path

THUMBNAIL = 160
"""The longest side of a thumbnail on the page, in pixels (JPEG quality 80)."""
UNSURE = 0.9
"""A predictions file's rows below this probability are on the page (with every unknown)."""


@dataclass(frozen=True)
class ReviewItem:
    """One image to decide on: ``path`` as the decisions file will name it (relative to the
    data folder for an audit), ``label`` its class now (``None`` when it has none), ``reason``
    why it is on the page, ``suggested`` the class catdog believes (or ``None``)."""

    path: str
    label: str | None
    reason: str
    suggested: str | None = None


def audit_items(audit: dict) -> list[ReviewItem]:
    """The images an ``audit.json`` flags, each once, most severe kind first: label issues,
    unfamiliar groups, outliers, near duplicates (all but the image an exclusion keeps)."""
    items: dict[str, ReviewItem] = {}

    def add(image: dict, reason: str, suggested=None) -> None:
        item = ReviewItem(image["path"], image["label"], reason, suggested)
        items.setdefault(image["path"], item)

    for image in audit.get("label_issues", []):
        add(image, "label issue", image.get("predicted"))
    for group in audit.get("unfamiliar", []):
        for image in group["images"]:
            add(image, f"unfamiliar group of {len(group['images'])}: {group['why']}")
    for image in audit.get("outliers", []):
        add(image, "outlier: looks like few other images")
    excluded = set(audit.get("exclude", []))
    for group in audit.get("near_duplicates", []):
        for image in group["images"]:
            if image["path"] in excluded:
                kind = "leak across splits" if group.get("leak") else "near duplicate"
                add(image, f"{kind} of {len(group['images']) - 1} other image(s)")
    return list(items.values())


def prediction_items(rows: list[dict], below: float = UNSURE) -> list[ReviewItem]:
    """The rows of a predictions file answered ``unknown`` or with a probability under
    ``below``, least sure first; rows that could not be read are left out."""
    chosen = []
    for row in rows:
        if row.get("error"):
            continue
        probability = float(row.get("probability") or 0.0)
        if row.get("class") == "unknown" or probability < below:
            chosen.append((probability, row))
    chosen.sort(key=lambda pair: pair[0])
    return [
        ReviewItem(
            row["path"],
            None,
            "unknown: like none of the training images"
            if row.get("class") == "unknown"
            else f"unsure: {probability:.0%}",
            None if row.get("class") == "unknown" else row.get("class"),
        )
        for probability, row in chosen
    ]


def suggestion_items(rows: list[dict]) -> list[ReviewItem]:
    """The rows of a ``suggestions.csv`` written by ``catdog suggest``, in its order: the
    photos to label (ranked), then those kept apart."""
    return [
        ReviewItem(
            row["path"],
            None,
            (f"#{row['rank']}: " if row.get("rank") else "kept apart: ") + row.get("reason", ""),
            row.get("nearest_class") or None,
        )
        for row in rows
    ]


def read_review_source(
    source: str | os.PathLike,
) -> tuple[str | None, list[str], list[ReviewItem]]:
    """``(data folder, class names, items)`` of an audit folder or its ``audit.json``, of a
    predictions ``.csv`` written by ``catdog predict`` (with ``class_names`` from its
    ``probability_<class>`` columns, paths as written), or of a ``suggestions.csv`` of ``catdog
    suggest`` (then the data folder is ``None`` and the paths absolute: as written where they
    exist from the working folder, else relative to the CSV's folder).

    Examples:
        ```python
        data, class_names, items = read_review_source("audit")
        ```
    """
    from catdog.deploy.prediction_files import CLASS_COLUMN_PREFIX  # loads Keras: not at import

    path = Path(source)
    if path.is_dir():
        path = path / "audit.json"
    if not path.is_file():
        raise InputFileNotFoundError(
            f"{str(path)!r} does not exist: pass an audit folder (or its audit.json) written by "
            "catdog audit, or a predictions .csv written by catdog predict --output."
        )
    if path.suffix.lower() == ".json":
        audit = _read_json(path)
        if not isinstance(audit, dict) or "class_names" not in audit or "data" not in audit:
            raise InvalidArgumentError(f"{str(path)!r} is not an audit.json written by catdog.")
        return audit["data"], list(audit["class_names"]), audit_items(audit)
    if path.suffix.lower() == ".csv":
        rows = [_absolute(row, path.parent) for row in _read_csv(path)]
        if rows and "rank" in rows[0]:  # catdog suggest's
            names = sorted({r["nearest_class"] for r in rows if r.get("nearest_class")})
            return None, names, suggestion_items(rows)
        names = [
            c.removeprefix(CLASS_COLUMN_PREFIX)
            for c in (rows[0] if rows else {})
            if c.startswith(CLASS_COLUMN_PREFIX)
        ]
        return None, names, prediction_items(rows)
    raise InvalidArgumentError(
        f"{str(path)!r} is neither an audit.json nor a predictions .csv: pass one of those."
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidArgumentError(f"{str(path)!r} is not valid JSON ({error}).") from None


def _read_csv(path: Path) -> list[dict]:
    """The rows of a predictions or suggestions CSV, checked for the columns the page needs."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidArgumentError(f"{str(path)!r} is not a readable CSV file ({error}).") from None
    columns = set(rows[0]) if rows else set()
    if rows and not ({"path", "rank"} <= columns or {"path", "class", "probability"} <= columns):
        raise InvalidArgumentError(
            f"{str(path)!r} is neither a catdog predict --output file (path, class, "
            "probability, ...) nor a catdog suggest list (rank, path, ...)."
        )
    for row in rows:
        try:
            float(row.get("probability") or 0.0)
        except ValueError:
            raise InvalidArgumentError(
                f"{str(path)!r} has a probability that is not a number: {row['probability']!r}."
            ) from None
    return rows


def _absolute(row: dict, folder: Path) -> dict:
    """``row`` with its path absolute: as written when it exists from here, else relative to
    the CSV's ``folder``."""
    path = row["path"]
    if not os.path.isabs(path) and not os.path.exists(path) and (folder / path).exists():
        path = str(folder / path)
    return {**row, "path": os.path.abspath(path)}


def thumbnail_uri(path: str | os.PathLike, side: int = THUMBNAIL) -> str | None:
    """A ``data:`` URI of a JPEG thumbnail of the image at ``path`` (longest side ``side``),
    or ``None`` when it cannot be read."""
    from PIL import Image

    try:
        if image_size_problem(path) is not None:  # over catdog's pixel limit: not decoded
            return None
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=80)
    except Exception:  # noqa: BLE001 (any file Pillow cannot draw: a card without a picture)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_review_page(
    items: list[ReviewItem],
    class_names: list[str],
    data: str | os.PathLike | None,
    out: str | os.PathLike,
    title: str = "catdog review",
) -> Path:
    """Write the review page of ``items`` (paths relative to the folder ``data``, or absolute
    where ``data`` is ``None``) to ``out``, in one step.

    Examples:
        ```python
        data, names, items = read_review_source("audit")
        write_review_page(items, names, data, "review.html")
        ```
    """
    payload = {
        "title": title,
        "data": None if data is None else os.path.abspath(data),
        "classes": list(class_names),
        "items": [
            {**asdict(item), "thumbnail": thumbnail_uri(os.path.join(data or "", item.path))}
            for item in items
        ],
    }
    # JSON inside <script>: "<" escaped, so no "</script>" in a name can end the block
    embedded = json.dumps(payload, ensure_ascii=False).replace("<", "\\u003c")
    fill = {"title": html.escape(title), "payload": embedded}
    page = re.sub(r"\{(title|payload)\}", lambda match: fill[match[1]], PAGE)  # one pass
    out = Path(out)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out


PAGE = (Path(__file__).with_name("review_page.html")).read_text(encoding="utf-8")
"""The page's HTML, CSS and script, with ``{title}`` and ``{payload}`` to fill."""
