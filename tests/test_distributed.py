"""Multi-worker training and distributed tuning, with real processes on 127.0.0.1.

A ``MultiWorkerMirroredStrategy`` can only be created at a process's start, so every test that
needs one starts fresh worker processes with their own ``TF_CONFIG``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from catdog.errors import InvalidArgumentError
from catdog.training.cluster import cluster_spec
from catdog.training.distribute import (
    describe_task,
    is_chief,
    make_strategy,
    scratch_folder,
)

WORKER_TIMEOUT = 300


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen, log: Path) -> str:
    try:
        process.wait(WORKER_TIMEOUT)
    finally:
        process.kill()
    return log.read_text()


def start_workers(tmp_path: Path, args: list[str], ports: list[int], tag: str = "") -> list:
    """One ``catdog`` process per port; each gets its own TMPDIR to check for leftovers."""
    started = []
    for index in range(len(ports)):
        tmp = tmp_path / f"tmp{index}"
        tmp.mkdir(exist_ok=True)
        log = tmp_path / f"worker{index}{tag}.log"
        env = {"TF_CONFIG": tf_config(ports, index), "TMPDIR": str(tmp)}
        started.append((start([sys.executable, "-m", "catdog", *args], env, log), log))
    return started


def digest_of(log: str) -> str:
    found = re.findall(r"final weights sha256 ([0-9a-f]{64})", log)
    assert found, log[-3000:]
    return found[-1]


# ----------------------------------------------------------------------------- in-process
def test_tf_config_is_checked_with_a_clear_message():
    assert cluster_spec({}) is None
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        cluster_spec({"TF_CONFIG": "{cluster"})
    with pytest.raises(InvalidArgumentError, match='no "cluster"'):
        cluster_spec({"TF_CONFIG": '{"task": {"type": "worker", "index": 0}}'})
    with pytest.raises(InvalidArgumentError, match="not in its cluster"):
        cluster_spec({"TF_CONFIG": tf_config([1, 2], 2)})
    assert cluster_spec({"TF_CONFIG": tf_config([1, 2], 1)})["task"]["index"] == 1


def test_make_strategy_names_and_refusals(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is None
    if not tf.config.list_physical_devices("GPU"):
        assert make_strategy(None) is None  # mirrored only with several GPUs
    with pytest.raises(InvalidArgumentError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(InvalidArgumentError, match="strategy must be one of"):
        make_strategy("horovod")


def fake_strategy(cluster: dict, task_type: str, task_id: int):

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_the_chief_is_tensorflows_chief_or_first_worker():
    workers = {"worker": ["a:1", "b:2"]}
    assert is_chief(None)
    assert is_chief(fake_strategy(workers, "worker", 0))
    assert not is_chief(fake_strategy(workers, "worker", 1))
    with_chief = {"chief": ["c:3"], **workers}
    assert is_chief(fake_strategy(with_chief, "chief", 0))
    assert not is_chief(fake_strategy(with_chief, "worker", 0))
    assert describe_task(fake_strategy(workers, "worker", 1)) == "worker 1"


def test_only_other_workers_get_a_scratch_folder_and_it_is_removed():
    with scratch_folder(None) as scratch:
        assert scratch is None
    with scratch_folder(fake_strategy({"worker": ["a:1", "b:2"]}, "worker", 1)) as scratch:
        assert scratch.is_dir()
        (scratch / "best.keras").write_text("x")
    assert not scratch.exists()


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_a_worker_resumes_from_the_chiefs_backup_and_writes_its_own(tmp_path):
    from catdog.training.callbacks import AtomicBackupAndRestore

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    chief_state = tmp_path / "chief"
    chief = _tiny_model()  # its state kept, as when the chief is killed after epoch 2
    chief.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[AtomicBackupAndRestore(str(chief_state), delete_checkpoint=False)],
    )
    kept = {p.name: p.read_bytes() for p in chief_state.iterdir()}
    assert json.loads(kept["training_metadata.json"])["epoch"] == 2

    worker = _tiny_model()
    own = tmp_path / "worker"
    backup = AtomicBackupAndRestore(own, delete_checkpoint=False, restore_from=chief_state)
    start = backup.restore(worker)
    assert start == 2  # the chief's weights, and the epoch to go on from
    pairs = zip(worker.get_weights(), chief.get_weights(), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    history = worker.fit(x, y, epochs=4, initial_epoch=start, verbose=0, callbacks=[backup])
    assert history.epoch == [2, 3]  # went on after the chief's two epochs
    assert json.loads((own / "training_metadata.json").read_text())["epoch"] == 4
    assert {p.name: p.read_bytes() for p in chief_state.iterdir()} == kept  # untouched


def test_cli_refuses_multi_worker_without_tf_config(tmp_path, monkeypatch, capsys):
    from catdog.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", "--demo", "--out", str(tmp_path / "run"), "--strategy", "multi_worker"])
    assert code == 2
    assert "TF_CONFIG" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_learning_rate_finder_is_refused_on_a_cluster(tmp_path):
    from catdog.runs.config import RunConfig, check_config, resolve_defaults
    from catdog.runs.job import run_training

    config = resolve_defaults(RunConfig(out=tmp_path / "run", model="baseline"))
    worker = fake_strategy({"worker": ["a:1", "b:2"]}, "worker", 1)
    with pytest.raises(InvalidArgumentError, match="single-worker run"):
        run_training(replace(config, learning_rate="auto"), strategy=worker)
    assert not (tmp_path / "run").exists()
    with pytest.raises(InvalidArgumentError, match="strategy must be one of"):
        check_config(replace(config, strategy="ring"))


def test_distributed_tuning_variables_are_checked():
    pytest.importorskip("keras_tuner")
    from catdog.training.tuning import distributed_role

    assert distributed_role({}) is None
    assert distributed_role({"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "h",
                             "KERASTUNER_ORACLE_PORT": "8000"}) == "chief"  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="KERASTUNER_TUNER_ID"):
        distributed_role({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "8000"})
    with pytest.raises(InvalidArgumentError, match="KERASTUNER_ORACLE_PORT='x'"):
        environ = {"KERASTUNER_TUNER_ID": "t1", "KERASTUNER_ORACLE_IP": "h"}
        distributed_role({**environ, "KERASTUNER_ORACLE_PORT": "x"})


# ----------------------------------------------------------------------------- processes
TRAIN_ARGS = ["train", "--model", "baseline", "--image-size", "32", "--batch-size", "8"]


@pytest.mark.slow
def test_two_workers_train_one_run_folder_with_identical_weights(tmp_path, synthetic_root):
    out = tmp_path / "run"
    args = [*TRAIN_ARGS, "--data", str(synthetic_root), "--epochs", "2", "--out", str(out)]
    workers = start_workers(tmp_path, [*args, "--strategy", "multi_worker"], free_ports(2))
    logs = [finish(process, log) for process, log in workers]
    assert [process.returncode for process, _ in workers] == [0, 0], logs[1][-3000:]
    assert digest_of(logs[0]) == digest_of(logs[1])
    assert "the chief writes the run folder" in logs[1]
    assert [p.relative_to(out) for p in out.rglob("*.keras")] == [Path("model.keras")]
    assert not (out / ".resume").exists()
    assert not any((tmp_path / "tmp1").iterdir())  # the worker's scratch folder is gone
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history["val_accuracy"]) == 2

    from catdog.deploy.export import load_model
    from catdog.deploy.predict import predict

    result = predict(load_model(out / "model.keras"), sorted(synthetic_root.rglob("*.jpg"))[:3])
    assert len(result) == 3 and all(r.class_name in ("cats", "dogs") for r in result)


@pytest.mark.slow
def test_a_worker_failing_before_training_stops_the_others(tmp_path, synthetic_root):
    out = tmp_path / "run"
    ports, runs = free_ports(2), []
    for index, data in enumerate([synthetic_root, tmp_path / "missing"]):
        args = [*TRAIN_ARGS, "--data", str(data), "--epochs", "1", "--out", str(out)]
        env = {"TF_CONFIG": tf_config(ports, index)}
        log = tmp_path / f"worker{index}.log"
        runs.append((start([sys.executable, "-m", "catdog", *args, "--strategy", "multi_worker"],
                           env, log), log))  # fmt: skip
    logs = [finish(process, log) for process, log in runs]
    assert [process.returncode for process, _ in runs] == [2, 2]  # no worker waits forever
    assert "missing" in logs[1].splitlines()[-1]  # the failing worker's own error
    assert "Another worker of the cluster failed before training" in logs[0]
    assert not (out / "model.keras").exists() and not (out / ".resume").exists()


@pytest.mark.slow
def test_workers_that_see_different_run_folders_refuse_to_train(tmp_path, synthetic_root):
    args = [*TRAIN_ARGS, "--data", str(synthetic_root), "--epochs", "1"]
    finished = tmp_path / "finished"
    done = subprocess.run(
        [sys.executable, "-m", "catdog", *args, "--out", str(finished)],
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ports, runs = free_ports(2), []
    for index, out in enumerate([finished, tmp_path / "empty"]):  # as if --out were not shared
        env = {"TF_CONFIG": tf_config(ports, index)}
        log = tmp_path / f"worker{index}.log"
        command = [sys.executable, "-m", "catdog", *args, "--out", str(out)]
        runs.append((start([*command, "--strategy", "multi_worker"], env, log), log))
    logs = [finish(process, log) for process, log in runs]
    assert [process.returncode for process, _ in runs] == [2, 2]
    for log in logs:
        assert "The workers disagree on whether the run is already finished ([1, 0]" in log
        assert "same --out (on shared storage)" in log
    assert not (tmp_path / "empty" / "model.keras").exists()


SHARD_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from catdog.training.distribute import make_strategy, shard_by_example
    strategy = make_strategy("multi_worker")
    from catdog.data.pipelines import from_directory
    splits = from_directory(sys.argv[1], image_size=(32, 32), batch_size=8, seed=3)
    seen = []
    for epoch in range(2):
        for images, _ in strategy.experimental_distribute_dataset(shard_by_example(splits.train)):
            for local in strategy.experimental_local_results(images):
                seen += [hashlib.sha256(i.tobytes()).hexdigest() for i in local.numpy()]
    print("SEEN", json.dumps({"seen": seen, "total": len(splits.files["train"])}))
    """
)


@pytest.mark.slow
def test_each_training_image_is_seen_once_per_epoch_across_workers(tmp_path, synthetic_root):
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    ports, runs = free_ports(2), []
    for index in range(2):
        log = tmp_path / f"shard{index}.log"
        env = {"TF_CONFIG": tf_config(ports, index)}
        runs.append((start([sys.executable, str(script), str(synthetic_root)], env, log), log))
    outputs = [finish(process, log) for process, log in runs]
    seen = [json.loads(out.split("SEEN ", 1)[1].splitlines()[0]) for out in outputs]
    total = seen[0]["total"]
    first, second = (s["seen"] for s in seen)
    # two epochs: each worker sees its half twice; together every image twice
    assert len(first) + len(second) == 2 * total
    assert len(set(first) | set(second)) == total
    epoch1 = [first[: len(first) // 2], second[: len(second) // 2]]
    assert len(set(epoch1[0]) | set(epoch1[1])) == total  # epoch 1: all of them,
    assert not set(epoch1[0]) & set(epoch1[1])  # and no image on both workers


def _state_epoch(out: Path) -> int:
    record = out / ".resume" / "stage1" / "state" / "training_metadata.json"
    try:
        return json.loads(record.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_killed_worker_restarted_with_the_cluster_completes_the_run(tmp_path):
    out, epochs = tmp_path / "run", 12  # enough epochs left to kill the worker mid-run
    args = [*TRAIN_ARGS, "--demo", "--epochs", str(epochs), "--out", str(out)]
    args += ["--strategy", "multi_worker"]
    ports = free_ports(2)
    (chief, chief_log), (worker, worker_log) = start_workers(tmp_path, args, ports)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while _state_epoch(out) < 1 and time.monotonic() < deadline and chief.poll() is None:
        time.sleep(0.05)
    assert _state_epoch(out) >= 1, chief_log.read_text()[-3000:]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    log = finish(chief, chief_log)
    assert chief.returncode == 2, log[-3000:]  # the cluster lost a worker: a one-line error
    assert "lost contact with the cluster" in log and "Restart every worker" in log
    assert not (out / "model.keras").exists()
    resumed_from = _state_epoch(out)
    assert 1 <= resumed_from < epochs

    restarted = start_workers(tmp_path, args, free_ports(2), tag="-restart")
    logs = [finish(process, log) for process, log in restarted]
    assert [process.returncode for process, _ in restarted] == [0, 0], logs[0][-3000:]
    assert digest_of(logs[0]) == digest_of(logs[1])
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history["val_accuracy"]) == epochs  # the killed run's epochs and the rest
    assert f"Epoch {resumed_from + 1}/{epochs}" in logs[1]
    assert f"Epoch 1/{epochs}" not in logs[1]  # the worker resumed, too


@pytest.mark.slow
def test_distributed_search_one_chief_two_workers(tmp_path):
    pytest.importorskip("keras_tuner")
    out = tmp_path / "search"
    args = ["tune", "--demo", "--tuner", "random", "--max-trials", "4", "--epochs", "1"]
    args += ["--families", "baseline", "--out", str(out)]
    (port,) = free_ports(1)
    common = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    runs = []
    for tuner_id in ("chief", "tuner0", "tuner1"):
        log = tmp_path / f"{tuner_id}.log"
        env = {**common, "KERASTUNER_TUNER_ID": tuner_id}
        runs.append((start([sys.executable, "-m", "catdog", *args], env, log), log))
    logs = [finish(process, log) for process, log in runs]
    assert [process.returncode for process, _ in runs] == [0, 0, 0], logs[1][-3000:]
    summary = json.loads((out / "summary.json").read_text())
    completed = [t for t in summary["trials"] if t["status"] == "COMPLETED"]
    assert len(completed) == len(summary["trials"]) == 4
    assert len({t["trial_id"] for t in completed}) == 4
    assert len({json.dumps(t["hyperparameters"], sort_keys=True) for t in completed}) == 4
    assert len(list(out.glob("trial_*"))) == 4
    assert (out / "best_model.keras").is_file()
    assert "the chief writes" in logs[1] and "the chief writes" in logs[2]
    assert "best val_accuracy" in logs[0]


# ----------------------------------------------------------------------------- issue 23
def _unused_port() -> int:
    (port,) = free_ports(1)
    return port


@pytest.mark.parametrize(
    "cluster, task, message",
    [
        ({"worker": ["a:1"], "ps": ["b:2"]}, {"type": "worker", "index": 0}, "parameter-server"),
        ({"worker": [12345, "b:2"]}, {"type": "worker", "index": 0}, r"\['worker'\]\[0\] is 12345"),
        ({"worker": ["a:1", "b"]}, {"type": "worker", "index": 0}, "'b': each task's address"),
        ({"worker": ["a:1", "b:99999"]}, {"type": "worker", "index": 0}, "port from 1 to 65535"),
        ({"worker": "a:1"}, {"type": "worker", "index": 0}, "must be a list of addresses"),
        ({"chief": ["a:1", "b:2"]}, {"type": "chief", "index": 0}, "a list of one address"),
        ({"evaluator": ["a:1"]}, {"type": "evaluator", "index": 0}, "and nothing else"),
        ({"worker": []}, {"type": "worker", "index": 0}, '"worker" tasks'),
        ({"worker": ["a:1", "a:1"]}, {"type": "worker", "index": 0}, "several tasks"),
        ({"worker": ["a:1"]}, {"type": "worker", "index": True}, "not in its cluster"),
        ({"worker": ["a:1"]}, {"type": ["worker"], "index": 0}, "not in its cluster"),
    ],
)
def test_tf_config_is_validated_up_front_with_one_line(cluster, task, message):
    text = json.dumps({"cluster": cluster, "task": task})
    with pytest.raises(InvalidArgumentError, match=message) as raised:
        cluster_spec({"TF_CONFIG": text})
    assert "\n" not in str(raised.value)
    ipv6 = {"cluster": {"worker": ["[::1]:5000", "b:2"]}, "task": {"type": "worker", "index": 1}}
    assert cluster_spec({"TF_CONFIG": json.dumps(ipv6)})["task"]["index"] == 1


def test_cli_refuses_a_ps_cluster_before_any_work(tmp_path, monkeypatch, capsys):
    from catdog.cli import main

    config = {"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]},
              "task": {"type": "worker", "index": 0}}  # fmt: skip
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    code = main(["train", "--demo", "--out", str(tmp_path / "run"), "--strategy", "multi_worker"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "parameter-server training is not supported" in err[0]
    assert not (tmp_path / "run").exists()


def test_tf_config_without_the_multi_worker_strategy_warns(monkeypatch, caplog):
    import logging

    from catdog.training import distribute

    monkeypatch.setattr(distribute, "_warned_alone", False)
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 0))
    with caplog.at_level(logging.WARNING, logger="catdog"):
        assert make_strategy("none") is None
        assert make_strategy("none") is None  # once per process
    warnings = [r.getMessage() for r in caplog.records if "TF_CONFIG is set" in r.getMessage()]
    assert len(warnings) == 1
    assert "strategy is none" in warnings[0] and "--strategy multi_worker" in warnings[0]


def test_a_missing_peer_stops_with_one_line_after_the_timeout(tmp_path, monkeypatch, capsys):
    import logging

    from catdog.cli import main

    own, peer = free_ports(2)
    config = {"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
              "task": {"type": "worker", "index": 0}}  # fmt: skip
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    argv = ["train", "--demo", "--out", str(tmp_path / "run"), "--strategy", "multi_worker"]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("catdog").addHandler(handler)
    started = time.monotonic()
    try:
        code = main([*argv, "--cluster-timeout", "2"])
    finally:
        logging.getLogger("catdog").removeHandler(handler)
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and elapsed < 10, elapsed
    assert f"worker 1 at 127.0.0.1:{peer}" in err and "no answer within 2 s" in err
    assert "--cluster-timeout" in err and "Traceback" not in err
    said = " ".join(r.getMessage() for r in records)
    assert f"worker 0: waiting up to 2 s for worker 1 at 127.0.0.1:{peer}" in said
    assert not (tmp_path / "run").exists()
    with socket.create_server(("127.0.0.1", own)):  # its own port is free again
        pass


def test_waiting_for_peers_honours_sigterm_and_sigint():
    import threading

    from catdog.errors import ClusterError
    from catdog.training.cluster import wait_for_peers

    # as in a fresh `catdog` process started from a terminal (TensorFlow may have set its own
    # SIGTERM handler in this one; a runner may start it with SIGINT ignored or blocked). The
    # signal often lands during a connection attempt, which once swallowed it as an OSError.
    both = {signal.SIGTERM, signal.SIGINT}
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    earlier_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    earlier_mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, both)
    peers = {"worker 1": f"127.0.0.1:{_unused_port()}"}
    try:
        for signum, expected in [
            (signal.SIGTERM, ClusterError),
            (signal.SIGINT, KeyboardInterrupt),
        ]:
            timer = threading.Timer(0.5, os.kill, (os.getpid(), signum))
            started = time.monotonic()
            timer.start()
            with pytest.raises(expected) as raised:
                wait_for_peers(peers, 15, who="worker 0")
            assert time.monotonic() - started < 5
            timer.join()
            if expected is ClusterError:
                assert "stopped by SIGTERM while waiting for worker 1" in str(raised.value)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, earlier_mask)
        signal.signal(signal.SIGINT, earlier_int)
        signal.signal(signal.SIGTERM, earlier)


def test_cluster_timeout_is_checked_and_not_a_training_setting(tmp_path):
    from catdog.runs.config import RunConfig, changed_fields, check_config, resolve_defaults
    from catdog.training.cluster import wait_for_peers

    assert changed_fields({"cluster_timeout": 300}, {"cluster_timeout": 5}) == []
    config = resolve_defaults(RunConfig(out=tmp_path / "run", model="baseline"))
    with pytest.raises(InvalidArgumentError, match="cluster_timeout must be a positive number"):
        check_config(replace(config, cluster_timeout=0))
    with pytest.raises(InvalidArgumentError, match="cluster_timeout"):
        wait_for_peers({"worker 1": "a:1"}, -1)
    with pytest.raises(InvalidArgumentError, match="host:port"):
        wait_for_peers({"worker 1": "a"}, 1)


def test_a_tuning_worker_checks_the_oracle_and_stops_after_the_timeout(
    synthetic_splits, tmp_path, monkeypatch
):
    pytest.importorskip("keras_tuner")
    from catdog.errors import ClusterError
    from catdog.training.tuning import distributed_role, tune

    worker = {"KERASTUNER_TUNER_ID": "tuner0", "KERASTUNER_ORACLE_PORT": "8000"}
    for ip in ("", "  "):
        with pytest.raises(InvalidArgumentError, match="KERASTUNER_ORACLE_IP="):
            distributed_role({**worker, "KERASTUNER_ORACLE_IP": ip})
    with pytest.raises(InvalidArgumentError, match="KERASTUNER_ORACLE_PORT='0'"):
        distributed_role({**worker, "KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "0"})
    port = _unused_port()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    started = time.monotonic()
    with pytest.raises(ClusterError) as raised:
        tune(synthetic_splits, "random", 1, directory=tmp_path, cluster_timeout=1.5)
    assert time.monotonic() - started < 8
    message = str(raised.value)
    assert f"tuner0: no answer within 1.5 s from the oracle (the chief) at 127.0.0.1:{port}" in (
        message
    )
    assert "KERASTUNER_TUNER_ID=chief" in message and "\n" not in message
    assert not any(tmp_path.iterdir())  # KerasTuner was never started


@pytest.mark.slow
def test_sigterm_ends_a_worker_waiting_for_its_cluster(tmp_path):
    own, peer = free_ports(2)
    config = {"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
              "task": {"type": "worker", "index": 0}}  # fmt: skip
    log = tmp_path / "worker.log"
    args = ["train", "--demo", "--out", str(tmp_path / "run"), "--strategy", "multi_worker"]
    process = start([sys.executable, "-m", "catdog", *args], {"TF_CONFIG": json.dumps(config)}, log)
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while "waiting up to 300 s for worker 1" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(10)  # promptly, not after the timeout
    finally:
        process.kill()
    assert process.returncode == 2
    lines = [line for line in log.read_text().splitlines() if line.startswith("catdog")]
    assert lines[-1] == (
        f"catdog: error: worker 0: stopped by SIGTERM while waiting for worker 1 at "
        f"127.0.0.1:{peer}."
    )
