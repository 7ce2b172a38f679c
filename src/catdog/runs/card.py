"""The model card of a run folder: ``README.md``, written from the run's own files.

It says what the model was trained on and how (data, classes, counts and fingerprints of each
split, model, settings), how well it did (test metrics with their 95% interval, next to the
majority baseline), which software made it and how long it took, and what it is for and not
for.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from catdog.errors import DatasetNotFoundError, OutputError
from catdog.io import write_text
from catdog.report import markdown as md
from catdog.runs.config import RunConfig
from catdog.runs.record import RunFolder
from catdog.timings import describe

_FIGURES = (
    (RunFolder.SAMPLES_PLOT, "Sample images"),
    (RunFolder.HISTORY_PLOT, "Training history"),
    (RunFolder.CONFUSION_PLOT, "Confusion matrix (test split)"),
    (RunFolder.MISCLASSIFIED_PLOT, "Most confidently wrong test images"),
    (RunFolder.RELIABILITY_PLOT, "Reliability diagram (test split, before and after calibration)"),
    (RunFolder.RISK_COVERAGE_PLOT, "Risk-coverage curve (test split)"),
)


def is_foreign_readme(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that is not a catdog model card (catdog leaves it alone)."""
    path = Path(path)
    return path.is_file() and not path.read_text(encoding="utf-8", errors="replace").startswith(
        "# Model card:"
    )


def model_card(run_folder: str | os.PathLike) -> str:
    """The model card (Markdown) of a finished run folder.

    Examples:
        ```python
        print(model_card("runs/demo"))
        ```
    """
    from catdog.report.evaluation import Report

    folder = RunFolder(run_folder)
    config, report = folder.record(), folder.read(RunFolder.REPORT)
    if report is not None:  # checked: a hand-edited field is named, not a traceback
        Report.from_dict(report, source=repr(str(folder.report)))
    if not isinstance(config, dict) or not isinstance(report, dict):
        raise DatasetNotFoundError(
            f"{str(folder.path)!r} is not a finished catdog run folder (config.json and "
            "report.json are needed). Run `catdog train --out FOLDER` first."
        )
    sections = [
        f"# Model card: {md.escape(config['model'])} on "
        f"{md.escape(Path(str(config['data'])).name)}",
        _data_section(config),
        _model_section(config),
        _results_section(report),
        _confidence_section(config, report),
        "## Figures\n\n"
        + "\n".join(f"![{title}]({name})" for name, title in _FIGURES if (folder / name).exists()),
        _versions_section(config, report),
        _use_section(config, report),
    ]
    return "\n\n".join(sections) + "\n"


def write_model_card(run_folder: str | os.PathLike) -> Path:
    """Write (or rewrite) ``README.md`` in a finished run folder, atomically; return its path.

    ``catdog card RUN`` does the same from the command line. A ``README.md`` that is not a
    catdog model card is never overwritten.

    Examples:
        ```python
        write_model_card("runs/demo")
        ```
    """
    path = RunFolder(run_folder).card
    if is_foreign_readme(path):
        raise OutputError(
            f"{str(path)!r} is not a catdog model card; catdog will not overwrite it. Move it, "
            "or train into another folder."
        )
    return write_text(path, model_card(run_folder))


def _data_section(config: dict) -> str:
    splits = config.get("splits") or {}
    rows = ["| split | images | per class | file list SHA-256 |", "|---|---|---|---|"]
    for name, split in splits.items():
        per_class = ", ".join(
            f"{md.escape(k)}: {v}" for k, v in (split.get("per_class") or {}).items()
        )
        rows.append(
            f"| {md.escape(name)} | {split['count']} | {per_class} | `{split['sha256'][:16]}…` |"
        )
    return (
        "## Data\n\n"
        f"- Folder: {md.code(config['data'])}\n"
        "- Classes, in output order: "
        f"{', '.join(map(md.escape, config.get('class_names') or []))}\n"
        f"- Split seed: {config['seed']} (every copy of an image is in one split)\n\n"
        + "\n".join(rows)
    )


def _model_section(config: dict) -> str:
    parameters = config.get("parameters")
    shown = dict(config)
    if config.get("learning_rate") == "auto" and config.get("learning_rate_found"):
        shown["learning_rate"] = f"{config['learning_rate_found']:.2g} (learning-rate finder)"
    elif config.get("learning_rate") == "auto" and config.get("learning_rate_note"):
        shown["learning_rate"] = f"learning-rate finder: {config['learning_rate_note']}"
    shown["class_weight"] = config.get("class_weight")
    table = [f.name for f in fields(RunConfig) if f.metadata["card"]]  # RunConfig's `card=True`
    settings = "\n".join(f"| {k} | {md.escape(shown.get(k))} |" for k in table if k in shown)
    return (
        "## Model and training\n\n"
        f"- Model: {md.code(config['model'])}"
        + (f", {parameters:,} parameters" if parameters else "")
        + f"; input {config['image_size']}x{config['image_size']} RGB pixels (0..255)\n"
        f"- Weights of a pretrained base: {md.escape(config.get('weights'))}\n\n"
        "| setting | value |\n|---|---|\n" + settings
    )


def _results_section(report: dict) -> str:
    count, accuracy = report.get("count", 0), report.get("accuracy", 0.0)
    interval = report.get("accuracy_ci95")
    interval_text = f" (95% interval {interval[0]:.1%} to {interval[1]:.1%})" if interval else ""
    rows = ["| class | precision | recall | recalled | support |", "|---|---|---|---|---|"]
    for i, (name, m) in enumerate(report.get("per_class", {}).items()):
        recalled = report["confusion"][i][i]
        rows.append(
            f"| {md.escape(name)} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{recalled}/{m['support']} "
            f"| {m['support']} |"
        )
    accuracy_line = ""
    if count:
        accuracy_line = (
            f"- Accuracy: **{accuracy:.2%}** on {count} images{interval_text}; one image is "
            f"{1 / count:.2%} of the test split\n"
        )
    loss = report.get("loss")
    return (
        "## Results on the test split\n\n"
        + accuracy_line
        + f"- Majority baseline: {report.get('baseline', 0.0):.2%}\n"
        + (f"- Loss: {loss:.4f}\n" if loss is not None else "")
        + "\n"
        + "\n".join(rows)
    )


def _confidence_section(config: dict, report: dict) -> str:
    """What the model says about how sure it is: its calibration and its unknown answer."""
    found = config.get("calibration") or {}
    lines = ["## Confidence and unknown images", ""]
    if not found:
        plain = (
            "- Not calibrated, no unknown answer: the probabilities are the raw softmax "
            "outputs, and every image gets one of the classes."
        )
        return "\n".join([*lines, plain])
    summary = (report.get("calibration") or {}).get("summary")
    lines.append(f"- Calibration: {md.escape(summary)}" if summary else "- Not calibrated.")
    unknown = report.get("unknown")
    if found.get("method") and unknown:
        lines.append(
            f"- Unknown answer: an image whose {md.escape(found['method'])} score is above "
            f"{found['threshold']:.4g} is answered `unknown` (its class probabilities still "
            f"given). The threshold accepts {found['coverage']:.1%} of the validation images: "
            f"about {1 - found['coverage']:.1%} of images like the training images are "
            "answered unknown too, the price of catching images unlike them."
        )
        coverage, accepted = report.get("coverage"), report.get("accepted_accuracy")
        if coverage is not None and accepted is not None:
            lines.append(
                f"- On the test split it answered {coverage:.1%} of the images, with accuracy "
                f"{accepted:.2%} on those."
            )
    return "\n".join(lines)


def _versions_section(config: dict, report: dict) -> str:
    """The software that made the model, and how long the run took (seconds per phase)."""
    found = config.get("versions") or {}
    timings = report.get("timings")
    took = f"\n\nThe run took {md.escape(describe(timings))}." if timings else ""
    return (
        "## Software\n\n"
        + "\n".join(f"- {md.escape(name)} {md.escape(v)}" for name, v in found.items())
        + took
    )


def _use_section(config: dict, report: dict) -> str:
    classes = ", ".join(map(md.escape, config.get("class_names") or []))
    return (
        "## Intended use and limits\n\n"
        f"- Classifies an image as one of: {classes}"
        + (
            ", or `unknown` for an image unlike the training images (see above; an unusual "
            "image close to the training images can still get a class).\n"
            if report.get("unknown")
            else ". It always answers with one of these classes, also for an image that shows "
            "none of them.\n"
        )
        + "- Measured on a held-out split of the same collection of images; photos from another "
        "source (camera, framing, lighting) may score lower. A small test split gives a wide "
        "interval.\n"
        "- EXIF orientation is not applied (in training or prediction).\n"
        "- Use it with `catdog predict model.keras IMAGE...` or "
        "`catdog.load_model`; the class names are inside `model.keras`."
    )
