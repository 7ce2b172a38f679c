import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import catdog
import catdog.training.callbacks
import catdog.training.fine_tune
import catdog.training.fit
from catdog.deploy.export import save_model
from catdog.errors import InvalidArgumentError
from catdog.models.classifier import get_base
from catdog.models.transfer import unfreeze_base
from catdog.training.fine_tune import (
    fine_tune,
    merge_histories,
)
from catdog.training.fit import train


def small_cnn(size=64):
    return catdog.build_baseline_model(input_shape=(size, size, 3), filters=(8, 16), dense_units=16)


def test_train_compiles_fits_and_keeps_best_checkpoint(synthetic_splits, tmp_path):
    model = small_cnn()
    best = tmp_path / "best.keras"
    history = train(model, synthetic_splits, epochs=3, checkpoint=best, verbose=0)
    assert model.compiled
    assert len(history.history["val_accuracy"]) == 3 and history.epoch == [0, 1, 2]
    loaded = keras.saving.load_model(best)
    _, accuracy = loaded.evaluate(synthetic_splits.validation, verbose=0)
    assert accuracy == pytest.approx(max(history.history["val_accuracy"]), abs=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]  # no temporary left over


def test_early_stopping_stops(synthetic_splits):
    model = small_cnn()
    history = train(
        model, synthetic_splits, epochs=30, early_stopping=1, learning_rate=1e-12, verbose=0
    )  # validation accuracy cannot change: stops after 2 epochs
    assert len(history.epoch) == 2


def test_atomic_save_never_leaves_a_partial_file(tmp_path):
    model = small_cnn(32)
    path = tmp_path / "model.keras"
    save_model(model, path)
    good = path.read_bytes()

    class Crash(RuntimeError):
        pass

    def broken_save(target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise Crash

    model.save = broken_save
    with pytest.raises(Crash):
        save_model(model, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_a_stage_after_a_resumed_stage_starts_at_its_own_epoch(synthetic_splits, tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    data, backup = synthetic_splits, tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        train(small_cnn(), data, 4, backup_dir=backup, callbacks=[Interrupt()], verbose=0)
    model = small_cnn()  # the rerun: resumes after epoch 2 of 4
    assert train(model, data, 4, backup_dir=backup, verbose=0).epoch == [0, 1, 2, 3]
    second = train(model, data, 1, initial_epoch=4, backup_dir=tmp_path / "b2", verbose=0)
    assert second.epoch == [4]  # not the first stage's resume epoch again


RESUME_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import keras
    import catdog
    from catdog.training.fit import train

    root, backup, log, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    splits = catdog.from_directory(root, image_size=(32, 32), batch_size=16, seed=1)
    keras.utils.set_random_seed(0)
    model = catdog.build_baseline_model(input_shape=(32, 32, 3), filters=(4,), dense_units=8)

    class Log(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with open(log, "a") as f:
                f.write(f"{epoch}\\n")
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    history = train(model, splits, epochs=5, backup_dir=backup, callbacks=[Log()], verbose=0)
    print(json.dumps(history.history))
    """
)


@pytest.mark.slow  # a killed subprocess and a resume (about 15 s)
def test_resume_after_sigkill(synthetic_root, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    backup, log = tmp_path / "backup", tmp_path / "epochs.log"
    args = [sys.executable, str(script), str(synthetic_root), str(backup), str(log)]
    killed = subprocess.run([*args, "3"], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert log.read_text().split() == ["0", "1", "2"]
    resumed = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]  # epochs 0-2 not rerun
    history = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert len(history["val_accuracy"]) == 5  # the whole run, both processes
    assert not (backup / "state").exists()  # the backup is removed when training finished


@pytest.mark.slow
def test_fine_tune_unfreezes_top_and_continues_epochs(synthetic_splits):
    model = catdog.build_transfer_model(input_shape=(64, 64, 3), weights=None)
    first = train(model, synthetic_splits, epochs=1, verbose=0)
    base = get_base(model)
    second = fine_tune(
        model, synthetic_splits, unfreeze_from=140, epochs=1, history=first, verbose=0
    )
    assert second.epoch == [1]
    assert [layer.trainable for layer in base.layers[:140]] == [False] * 140
    assert all(layer.trainable for layer in base.layers[140:])
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    merged = merge_histories(first, second)
    assert len(merged["accuracy"]) == 2


def test_checkpoint_is_only_replaced_by_a_better_epoch_than_an_earlier_stage(
    synthetic_splits, tmp_path, monkeypatch
):
    path = tmp_path / "best.keras"
    train(small_cnn(), synthetic_splits, epochs=1, checkpoint=path, best_so_far=1.0, verbose=0)
    assert not path.exists(), "no epoch can beat a perfect earlier stage"
    train(small_cnn(), synthetic_splits, epochs=1, checkpoint=path, best_so_far=0.0, verbose=0)
    assert path.exists()

    # fine_tune hands the first stage's best (from a History or a dict) on to train

    calls = []
    monkeypatch.setattr(
        catdog.training.fine_tune, "train", lambda *args, **kwargs: calls.append(kwargs)
    )
    model = catdog.build_transfer_model(input_shape=(64, 64, 3), weights=None)
    first = {"val_accuracy": [0.5, 1.0], "accuracy": [0.5, 0.9]}
    fine_tune(model, synthetic_splits, epochs=1, history=first, checkpoint=path)
    assert calls[0]["best_so_far"] == 1.0 and calls[0]["initial_epoch"] == 2


def test_unfreeze_errors():
    model = catdog.build_transfer_model(input_shape=(64, 64, 3), weights=None)
    with pytest.raises(InvalidArgumentError, match="layer index"):
        unfreeze_base(model, 10_000)
    with pytest.raises(InvalidArgumentError, match="no layer named"):
        unfreeze_base(model, "nope")
    assert unfreeze_base(model, "block_16_expand") == len(get_base(model).layers) - [
        layer.name for layer in get_base(model).layers
    ].index("block_16_expand")
    with pytest.raises(InvalidArgumentError, match="no pretrained base"):
        unfreeze_base(small_cnn(32))


def test_bad_train_arguments(synthetic_splits):
    with pytest.raises(InvalidArgumentError, match="epochs"):
        train(small_cnn(), synthetic_splits, epochs=0)
    with pytest.raises(InvalidArgumentError, match="early_stopping"):
        train(small_cnn(), synthetic_splits, epochs=1, early_stopping=0)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import catdog
    from catdog.training.fit import train

    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    splits = catdog.from_directory(sys.argv[1], image_size=(32, 32), batch_size=16)
    with strategy.scope():
        model = catdog.build_baseline_model(input_shape=(32, 32, 3), filters=(4,), dense_units=8)
    history = train(model, splits, epochs=2, strategy=strategy, verbose=0)
    print("replicas", strategy.num_replicas_in_sync, "epochs", len(history.epoch))
    with strategy.scope():  # the head on cached features trains under the strategy too
        transfer = catdog.build_transfer_model(input_shape=(32, 32, 3), weights=None)
    cached = train(transfer, splits, epochs=1, strategy=strategy, cache_features=True, verbose=0)
    print("cached epochs", len(cached.epoch))
    try:
        train(catdog.build_baseline_model(input_shape=(32, 32, 3)), splits, strategy=strategy)
    except ValueError as error:
        print("error:", error)
    """
)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(synthetic_root, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(synthetic_root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2 epochs 2" in done.stdout
    assert "cached epochs 1" in done.stdout
    assert "error: The model was not built under this strategy" in done.stdout


def test_trained_model_beats_the_baseline(synthetic_splits):
    model = catdog.build_preprocessed_model(input_shape=(64, 64, 3), rotation=None)
    train(model, synthetic_splits, epochs=6, verbose=0)
    report = catdog.report.evaluation.evaluate(model, synthetic_splits, split="validation")
    assert report.accuracy >= report.baseline + 0.25
    assert np.isfinite(report.loss)


def test_resume_state_is_written_atomically_and_a_torn_state_is_survived(
    synthetic_splits, tmp_path, caplog
):
    def model():
        net = catdog.build_baseline_model(input_shape=(64, 64, 3), filters=(4,), dense_units=8)
        return catdog.compile_model(net)

    state = tmp_path / "backup" / "state"
    state.mkdir(parents=True)
    (state / "latest.weights.h5").write_bytes(b"")  # a SIGKILL during Keras' in-place write
    (state / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (tmp_path / "backup" / "history.csv").write_text("epoch,loss\n0,9.0\n1,9.0\n2,9.0\n")
    with caplog.at_level(logging.WARNING, logger="catdog"):
        history = catdog.training.fit.train(
            model(), synthetic_splits, 2, backup_dir=tmp_path / "backup", verbose=0
        )
    assert len(history.history["loss"]) == 2  # started the stage again, from epoch 1
    assert 9.0 not in history.history["loss"]  # the discarded epochs' log went too
    assert "could not be read" in caplog.text

    net = model()
    callback = catdog.training.callbacks.AtomicBackupAndRestore(str(tmp_path / "atomic"))
    callback.save(net, 1)
    good = (tmp_path / "atomic" / "latest.weights.h5").read_bytes()

    def crash_midway(filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half")
        raise KeyboardInterrupt

    real_save = net.save_weights
    net.save_weights = crash_midway
    with pytest.raises(KeyboardInterrupt):
        callback.save(net, 2)
    assert (tmp_path / "atomic" / "latest.weights.h5").read_bytes() == good

    # weights of one epoch beside the record of another: detected, weights left alone
    net.save_weights = real_save
    before = [w.copy() for w in net.get_weights()]
    metadata = tmp_path / "atomic" / "training_metadata.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "sha256": "0" * 64}))
    net.set_weights([w + 1 for w in before])
    fresh = catdog.training.callbacks.AtomicBackupAndRestore(str(tmp_path / "atomic"))
    assert fresh.restore(net) == 0  # the stage starts again from its first epoch
    assert all((a == b + 1).all() for a, b in zip(net.get_weights(), before, strict=True))
    assert not (tmp_path / "atomic").exists()
