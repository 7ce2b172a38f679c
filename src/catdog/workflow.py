"""The end-to-end job behind ``catdog train``: data, model, training, fine-tuning, report.

Everything lands in one run folder; rerunning the same call after a crash resumes it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catdog.download import default_cache_dir
from catdog.errors import InvalidArgumentError
from catdog.io import write_json

logger = logging.getLogger("catdog")

DEMO_DEFAULTS = {"model": "preprocessed", "image_size": 64, "epochs": 8, "images_per_class": 200}


@dataclass
class RunConfig:
    """What ``catdog train`` does; the CLI fills it from its arguments."""

    out: Path
    model: str = "transfer"
    data: str = "cats_and_dogs"
    epochs: int = 20
    fine_tune_epochs: int = 0
    unfreeze_from: int = 100
    image_size: int = 160
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    weights: str | None = "imagenet"
    early_stopping: int | None = None
    cache_features: bool = False
    augment_copies: int = 0
    precision: str | None = None
    jit_compile: bool | str = "auto"
    seed: int = 1337
    verbose: str | int = "auto"
    model_kwargs: dict = field(default_factory=dict)


def demo_data(images_per_class: int = 200, image_size: int = 64) -> Path:
    """Generate (once) the synthetic demo dataset in the Keras cache and return its folder."""
    from catdog.synthetic import make_synthetic_dataset

    folder = default_cache_dir() / "datasets" / f"catdog-demo-{images_per_class}-{image_size}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".catdog-demo-", dir=folder.parent))
        try:
            make_synthetic_dataset(tmp, images_per_class, (image_size, image_size), seed=0)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_data(config: RunConfig):
    """Splits for ``config.data``: ``cats_and_dogs`` (downloaded) or a folder."""
    from catdog.data import from_directory, load_cats_and_dogs

    size = (config.image_size, config.image_size)
    if config.data == "cats_and_dogs":
        return load_cats_and_dogs(image_size=size, batch_size=config.batch_size, seed=config.seed)
    return from_directory(
        config.data, image_size=size, batch_size=config.batch_size, seed=config.seed
    )


def _build(config: RunConfig, num_classes: int):
    from catdog.models import build_model

    kwargs = dict(config.model_kwargs)
    if config.model == "transfer":
        kwargs.setdefault("weights", config.weights)
    return build_model(
        config.model,
        input_shape=(config.image_size, config.image_size, 3),
        num_classes=num_classes,
        precision=config.precision,
        **kwargs,
    )


def run_training(config: RunConfig) -> dict:
    """Train (and fine-tune) as configured; write the run folder; return a summary dict.

    The run folder gets ``model.keras`` (best by validation accuracy), ``class_names.json``,
    ``config.json`` (this configuration),
    ``history.json``/``history.png``, ``report.txt``/``report.json`` (test split),
    ``confusion_matrix.png``, ``misclassified.png`` and ``samples.png``. Its ``.resume/``
    sub-folder makes a rerun after a crash continue where the crash stopped.

    Examples:
        >>> run_training(RunConfig(out=Path("runs/demo"), model="baseline"))  # doctest: +SKIP
    """
    from catdog import plotting
    from catdog.evaluation import evaluate
    from catdog.models import check_model_name
    from catdog.saving import load_model
    from catdog.training import fine_tune, merge_histories, train

    check_model_name(config.model)
    if (config.fine_tune_epochs or config.cache_features) and config.model != "transfer":
        raise InvalidArgumentError(
            "--fine-tune-epochs and --fast (feature caching) need --model transfer."
        )
    splits = load_data(config)  # bad data fails here, before anything is written
    out = Path(config.out)
    resume = out / ".resume"
    resume.mkdir(parents=True, exist_ok=True)
    write_json(out / "class_names.json", splits.class_names)
    write_json(out / "config.json", {**asdict(config), "out": str(config.out)})
    plotting.plot_samples(splits, path=out / "samples.png")
    best = out / "model.keras"

    stage1_done = resume / "stage1.json"
    if stage1_done.exists():
        logger.warning("Resuming: the first training stage is already done.")
        first = json.loads(stage1_done.read_text())
        model = load_model(resume / "stage1.keras")
    else:
        model = _build(config, len(splits.class_names))
        first = train(
            model,
            splits,
            config.epochs,
            learning_rate=config.learning_rate,
            checkpoint=best,
            early_stopping=config.early_stopping,
            backup_dir=resume / "stage1",
            cache_features=config.cache_features,
            augment_copies=config.augment_copies,
            jit_compile=config.jit_compile,
            verbose=config.verbose,
        ).history
        if config.fine_tune_epochs:
            from catdog.io import save_model

            save_model(model, resume / "stage1.keras")
            write_json(stage1_done, first)
    histories = [first]
    fine_tune_start = None
    if config.fine_tune_epochs:
        fine_tune_start = len(next(iter(first.values())))
        second = fine_tune(
            model,
            splits,
            unfreeze_from=config.unfreeze_from,
            learning_rate=config.fine_tune_learning_rate,
            epochs=config.fine_tune_epochs,
            history=first,  # numbers the epochs on; the checkpoint must beat stage 1's best
            checkpoint=best,
            early_stopping=config.early_stopping,
            backup_dir=resume / "stage2",
            jit_compile=config.jit_compile,
            verbose=config.verbose,
        )
        histories.append(second.history)
    history = merge_histories(*histories)
    if best.exists():
        model = load_model(best)
    else:  # no validation improvement was ever recorded (e.g. empty validation split)
        from catdog.io import save_model

        save_model(model, best)
    report = evaluate(model, splits)
    write_json(out / "history.json", {"history": history, "fine_tune_start": fine_tune_start})
    plotting.plot_history(
        history, fine_tune_start=fine_tune_start, baseline=report.baseline, path=out / "history.png"
    )
    report.save(out)
    plotting.plot_confusion_matrix(report, path=out / "confusion_matrix.png")
    plotting.plot_misclassified(
        report, image_size=splits.image_size, path=out / "misclassified.png"
    )
    shutil.rmtree(resume, ignore_errors=True)
    return {"out": str(out), "report": report, "history": history}
