"""What a data audit found (see [`catdog.audit`][catdog.training.audit.audit]) and how it is
written: ``audit.md`` with a thumbnail grid (PNG) per issue type, ``audit.json`` with every
flagged file and the files it suggests excluding, and a one-line summary."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catdog._rules import SPLIT_NAMES, check_outside_data
from catdog.data.images import load_images
from catdog.errors import OutputError
from catdog.io import atomic_path, write_json, write_text
from catdog.report import markdown as md
from catdog.report._figures import figure, finish, grid, show

MARKDOWN_ROWS = 50
"""The most rows of each table in ``audit.md``; ``audit.json`` lists every flagged file."""
REPORT_FILES = frozenset(
    {
        "audit.json",
        "audit.md",
        "label_issues.png",
        "outliers.png",
        "near_duplicates.png",
        "unfamiliar.png",
    }
)
"""What a saved report holds: a folder with anything else is not replaced by a new report."""
THUMBNAILS = 16
"""The most images (near duplicates: groups) each thumbnail grid shows."""


@dataclass(frozen=True)
class FlaggedImage:
    """One image an audit flags.

    ``path`` is relative to the audited folder; ``split`` the split catdog puts it in (with
    the same seed); ``label`` its class folder. ``score`` is cleanlab's quality score for the
    issue, in 0..1: the lower, the more severe. ``predicted`` (label issues) is the class the
    out-of-fold model believes.
    """

    path: str
    split: str
    label: str
    score: float
    predicted: str | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that show (nearly) the same picture: resized, re-encoded or byte-identical.

    A ``leak`` when they are in more than one split: the model is then scored on images it
    was trained on.
    """

    images: list[FlaggedImage]

    @property
    def leak(self) -> bool:
        """True when the group spans train, validation and test (two of them or more)."""
        return len({image.split for image in self.images}) > 1

    def kept(self) -> FlaggedImage:
        """The image an exclusion keeps: the first in split order (train first), then path."""
        return min(self.images, key=lambda i: (SPLIT_NAMES.index(i.split), i.path))


@dataclass(frozen=True)
class UnfamiliarGroup:
    """Images that look like each other and like none of the classes: a cluster of the
    embedding whose labels are mixed across classes or that lies away from every class (say,
    photos of another animal filed under both classes). ``why`` says which."""

    images: list[FlaggedImage]
    why: str


@dataclass
class AuditReport:
    """What an audit of a labelled image folder found, ranked by severity.

    ``label_issues``, ``outliers`` (images that look like no class) and ``near_duplicates``
    (groups, leaks across splits first) are sorted most severe first; ``unfamiliar`` holds
    groups of images that look like each other and like none of the classes. ``summary`` holds
    cleanlab's issue summary (``{issue type: {"score": 0..1, "count": flagged}}``, lower
    scores meaning more issues); ``counts`` the images per split; ``settings`` how the audit
    ran (model, image size, folds, the out-of-fold accuracy, seconds); ``skipped`` the files
    that could not be read, and why.
    """

    data: str
    class_names: list[str]
    counts: dict[str, int]
    label_issues: list[FlaggedImage] = field(default_factory=list)
    outliers: list[FlaggedImage] = field(default_factory=list)
    near_duplicates: list[DuplicateGroup] = field(default_factory=list)
    unfamiliar: list[UnfamiliarGroup] = field(default_factory=list)
    summary: dict[str, dict] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def leaks(self) -> list[DuplicateGroup]:
        """The near-duplicate groups that span splits."""
        return [group for group in self.near_duplicates if group.leak]

    def path_of(self, image: FlaggedImage) -> str:
        """The full path of a flagged image (its ``path`` joined to ``data``)."""
        return os.path.join(self.data, image.path)

    def exclude(self) -> list[str]:
        """The files the audit suggests leaving out, relative to ``data``: every label issue
        and outlier, every image of an unfamiliar group, and of each near-duplicate group all
        but one image (the first in split order, so a leak leaves the training split intact).

        Examples:
            ```python
            splits = from_directory("data", exclude=[*report.exclude()])
            ```
        """
        dropped = {i.path for i in [*self.label_issues, *self.outliers]}
        dropped |= {i.path for group in self.unfamiliar for i in group.images}
        for group in self.near_duplicates:
            kept = group.kept()
            dropped |= {i.path for i in group.images if i is not kept}
        return sorted(dropped)

    def summary_line(self) -> str:
        """One line: images audited, label issues, near-duplicate groups (leaks), outliers."""
        total = sum(self.counts.values())
        return (
            f"audited {total} images: {len(self.label_issues)} label issue(s), "
            f"{len(self.near_duplicates)} near-duplicate group(s) ({len(self.leaks)} leak(s) "
            f"across splits), {len(self.outliers)} outlier(s), {len(self.unfamiliar)} unfamiliar "
            f"group(s) ({sum(len(g.images) for g in self.unfamiliar)} images); "
            f"{len(self.exclude())} file(s) "
            "suggested for exclusion"
        )

    def to_dict(self) -> dict:
        """The report as plain data: what ``audit.json`` holds (with ``exclude``)."""
        record = asdict(self)
        for group, plain in zip(self.near_duplicates, record["near_duplicates"], strict=True):
            plain["leak"] = group.leak
        return {**record, "exclude": self.exclude()}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``audit.json``, ``audit.md`` and its thumbnail grids (``label_issues.png``,
        ``near_duplicates.png``, ``outliers.png``, ``unfamiliar.png``) into ``folder``; return
        the path of ``audit.md``.

        The report is written whole into a temporary folder beside ``folder``, then moved
        into place: an earlier audit in ``folder`` is replaced all at once, or (on an error)
        left as it was. A folder that holds other files than an earlier audit, or lies inside
        the audited data, is refused.

        Examples:
            ```python
            report.save("audit")
            # PosixPath('audit/audit.md')
            ```
        """
        folder = Path(folder)
        check_outside_data("the audit folder", folder, self.data)
        others = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES) if (
            folder.is_dir()
        ) else []  # fmt: skip
        if others:
            raise OutputError(
                f"{str(folder)!r} holds other files than an audit report ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): choose an empty or new folder for the "
                "audit report (an earlier audit there is replaced whole)."
            )
        with atomic_path(folder, directory=True) as tmp:
            tmp.mkdir()
            write_json(tmp / "audit.json", self.to_dict())
            plot_flagged(self, self.label_issues, path=tmp / "label_issues.png")
            plot_flagged(self, self.outliers, path=tmp / "outliers.png")
            plot_duplicates(self, path=tmp / "near_duplicates.png")
            plot_duplicates(self, self.unfamiliar, path=tmp / "unfamiliar.png")
            write_text(tmp / "audit.md", self.to_markdown())
        return folder / "audit.md"

    def to_markdown(self) -> str:
        """``audit.md``: the summary, then a table and a thumbnail grid per issue type."""
        issues = self.label_issues
        return (
            "\n\n".join(
                [
                    _overview(self),
                    _section(
                        f"Label issues ({len(self.label_issues)})",
                        "Images whose class folder disagrees with what a model trained on the "
                        "other images believes (out of fold), most likely mislabelled first.",
                        "label_issues.png",
                        ["file", "split", "class", "model believes", "score"],
                        [[i.path, i.split, i.label, i.predicted, i.score] for i in issues],
                    ),
                    _section(
                        f"Near duplicates ({len(self.near_duplicates)} groups, "
                        f"{len(self.leaks)} leaks across splits)",
                        "Images that show the same picture (resized, re-encoded or identical). A "
                        "group in several splits is a leak: the score is then measured on images "
                        "the model was trained on.",
                        "near_duplicates.png",
                        ["group", "leak", "files (split)", "score"],
                        [
                            [n + 1, "yes" if g.leak else "no", _members(g), _worst(g)]
                            for n, g in enumerate(self.near_duplicates)
                        ],
                    ),
                    _section(
                        f"Outliers ({len(self.outliers)})",
                        "Images that look like none of the others: pictures of no class, "
                        "corrupt or blank files, another kind of photo.",
                        "outliers.png",
                        ["file", "split", "class", "score"],
                        [[i.path, i.split, i.label, i.score] for i in self.outliers],
                    ),
                    _unfamiliar_section(self.unfamiliar),
                ]
            )
            + "\n"
        )


def _unfamiliar_section(groups: list[UnfamiliarGroup]) -> str:
    photos = sum(len(g.images) for g in groups)
    return _section(
        f"Unfamiliar groups ({len(groups)})",
        f"{photos} photos that look like none of your classes: groups of images alike, whose "
        "labels are mixed across classes or that lie away from every class (another kind of "
        "picture filed under your classes). One row per group; the grid shows each group's "
        "first images.",
        "unfamiliar.png",
        ["group", "photos", "why", "files (split, class)"],
        [
            [n + 1, len(g.images), g.why, [f"{i.path} ({i.split}, {i.label})" for i in g.images]]
            for n, g in enumerate(groups)
        ],
    )


def _cell(value) -> str:
    """A table cell: a float to 4 decimals, a list one escaped item a line, else escaped text."""
    if isinstance(value, list):
        return "<br>".join(md.escape(item) for item in value)
    return md.escape(f"{value:.4f}" if isinstance(value, float) else value)


def _members(group: DuplicateGroup) -> list[str]:
    return [f"{i.path} ({i.split})" for i in group.images]


def _worst(group: DuplicateGroup) -> float:
    return min(i.score for i in group.images)


def _overview(report: AuditReport) -> str:
    settings = report.settings
    counts = ", ".join(f"{split} {report.counts.get(split, 0)}" for split in SPLIT_NAMES)
    rows = [
        f"| {_cell(kind)} | {_cell(found.get('count'))} | {_cell(found.get('score'))} |"
        for kind, found in report.summary.items()
    ]
    skipped = (
        f"\n\nNot readable, left out: {len(report.skipped)} file(s)." if report.skipped else ""
    )
    if settings.get("checks_not_run"):
        skipped += f"\n\nNot run (too few images): {', '.join(settings['checks_not_run'])}."
    accuracy = settings.get("accuracy")
    return (
        f"# Data audit of {md.code(report.data)}\n\n"
        f"{report.summary_line()}.\n\n"
        f"- Images: {counts}; classes: {', '.join(map(md.escape, report.class_names))}\n"
        f"- Features: {md.escape(settings.get('model'))} at {settings.get('image_size')} pixels; "
        f"out-of-fold probabilities: {settings.get('folds')}-fold {settings.get('head')}"
        + (
            f" (accuracy {accuracy:.1%}; majority baseline {settings['majority_baseline']:.1%})"
            if accuracy is not None and "majority_baseline" in settings
            else ""
        )
        + f"\n- Checks: {_checks(settings)}; scores in 0..1, lower is worse\n"
        f"- `audit.json` lists every flagged file and, under `exclude`, the "
        f"{len(report.exclude())} suggested for exclusion (`catdog train --exclude "
        "audit.json`)\n\n| issue | images flagged | score |\n|---|---|---|\n"
        + "\n".join(rows)
        + skipped
    )


def _checks(settings: dict) -> str:
    if "near_duplicate" in settings.get("checks", ("near_duplicate",)):
        return "cleanlab Datalab (label issues, near duplicates, outliers, class imbalance)"
    return (
        "cleanlab Datalab (label issues, class imbalance); on the embedding: near duplicates "
        "(cosine similarity), outliers (k-NN), unfamiliar groups (HDBSCAN clusters)"
    )


def _section(title: str, text: str, figure: str, header: list[str], rows: list[list]) -> str:
    if not rows:
        return f"## {title}\n\n{text}\n\nNone found."
    table = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    table += [f"| {' | '.join(_cell(v) for v in row)} |" for row in rows[:MARKDOWN_ROWS]]
    more = (
        f"\n\n{len(rows) - MARKDOWN_ROWS} more in audit.json." if len(rows) > MARKDOWN_ROWS else ""
    )
    return f"## {title}\n\n{text}\n\n![{title}]({figure})\n\n" + "\n".join(table) + more


# ----------------------------------------------------------------------------- figures
def plot_flagged(
    report: AuditReport,
    images: list[FlaggedImage],
    *,
    n: int = THUMBNAILS,
    image_size: tuple[int, int] = (96, 96),
    path: str | os.PathLike | None = None,
):
    """A thumbnail grid of the first ``n`` flagged images, each titled with its class (and the
    class the model believes), split and score; saved as PNG when ``path`` is given.

    Examples:
        ```python
        plot_flagged(report, report.label_issues, path="label_issues.png")
        ```
    """
    shown = images[:n]
    fig, axes = grid(len(shown), 4, cell=2.2)
    pixels = load_images([report.path_of(i) for i in shown], image_size) if shown else []
    for ax, image, item in zip(axes, pixels, shown, strict=False):
        believed = f" -> {item.predicted}" if item.predicted else ""
        show(ax, image, f"{item.label}{believed}\n{item.split} {item.score:.2f}")
    if not shown:
        axes[0].text(0.5, 0.5, "none found", ha="center", va="center")
    return finish(fig, path)


def plot_duplicates(
    report: AuditReport,
    groups: list | None = None,
    *,
    n: int = THUMBNAILS,
    image_size: tuple[int, int] = (96, 96),
    path: str | os.PathLike | None = None,
):
    """The first ``n`` near-duplicate groups (or other ``groups`` of images: unfamiliar
    groups), one row each (at most 4 images a row), titled with each image's split; saved as
    PNG when ``path`` is given.

    Examples:
        ```python
        plot_duplicates(report, path="near_duplicates.png")
        ```
    """
    groups = (report.near_duplicates if groups is None else groups)[:n]
    cols = max([min(4, len(g.images)) for g in groups] or [1])
    fig = figure(2.2 * cols, 2.2 * max(1, len(groups)))
    axes = fig.subplots(max(1, len(groups)), cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, group in zip(axes, groups, strict=False):
        members = group.images[:cols]
        pixels = load_images([report.path_of(i) for i in members], image_size)
        for ax, image, item in zip(row[: len(members)], pixels, members, strict=True):
            leak = "LEAK " if getattr(group, "leak", False) else ""
            show(ax, image, f"{leak}{item.split} {item.label}\n{item.score:.2f}")
    if not groups:
        axes[0][0].text(0.5, 0.5, "none found", ha="center", va="center")
    return finish(fig, path)
