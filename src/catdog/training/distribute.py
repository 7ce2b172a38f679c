"""Training on several devices or machines with TensorFlow's own strategies.

``make_strategy`` builds ``tf.distribute.MirroredStrategy`` (the GPUs of one machine) or
``tf.distribute.MultiWorkerMirroredStrategy`` (several machines, described by the
``TF_CONFIG`` environment variable). [`train`][catdog.training.fit.train] and ``catdog train
--strategy`` use them as the TensorFlow multi-worker guide prescribes: every worker runs the
same program on its shard of each epoch, only the chief writes files (the others write to
temporary folders and delete them), and ``BackupAndRestore`` state lets a restarted cluster go
on from the last finished epoch.

Keras 3's ``fit`` hands ``Strategy.reduce`` a nested batch and reduces scalar metrics along
axis 0, which ``MultiWorkerMirroredStrategy`` refuses (keras-team/keras#20585);
[`MultiWorkerStrategy`][catdog.training.distribute.MultiWorkerStrategy] is that strategy with a
``reduce`` that accepts both. Nothing else is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from catdog._rules import DEFAULT_CLUSTER_TIMEOUT, check_positive_number, check_strategy
from catdog.errors import ClusterError, InvalidArgumentError

logger = logging.getLogger("catdog")


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``tf.distribute.MultiWorkerMirroredStrategy`` that Keras 3's ``fit`` can drive.

    Its ``reduce`` takes a nested structure of values (reducing each) and reduces a scalar
    over all its (zero) axes: the two calls Keras 3 makes that the TensorFlow class refuses.
    Create it at program start, before any other TensorFlow operation, as TensorFlow requires.

    Examples:
        ```python
        strategy = MultiWorkerStrategy()  # reads TF_CONFIG
        with strategy.scope():
            model = build_model("baseline")
        ```
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(item):
            local = item.values[0] if isinstance(item, tf.distribute.DistributedValues) else item
            rank = getattr(getattr(local, "shape", None), "rank", None)
            return super(MultiWorkerStrategy, self).reduce(
                reduce_op, item, None if rank == 0 else axis
            )

        return tf.nest.map_structure(reduce_one, value)


TASK_TYPES = ("chief", "worker")
"""The task types of a catdog cluster: at most one ``chief`` and any number of ``worker``s."""


def parse_address(address) -> tuple[str, int] | None:
    """``(host, port)`` of a ``"host:port"`` string (``"[::1]:80"`` too), else ``None``.

    Examples:
        >>> parse_address("10.0.0.1:12345")
        ('10.0.0.1', 12345)
        >>> parse_address("[::1]:80"), parse_address("10.0.0.1"), parse_address(12345)
        (('::1', 80), None, None)
    """
    if not isinstance(address, str):
        return None
    host, colon, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not (colon and host.strip() and port.isdigit() and 0 < int(port) < 65536):
        return None
    return host, int(port)


def cluster_spec(environ: dict | None = None) -> dict | None:
    """The parsed ``TF_CONFIG`` (``cluster`` and ``task``), checked; ``None`` when unset.

    The cluster holds ``"worker"`` tasks and at most one ``"chief"``, each a list of
    ``"host:port"`` strings; ``"ps"`` (parameter-server training) and other task types are
    refused, as is a task that is not in the cluster.

    Examples:
        >>> spec = cluster_spec({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, '
        ...                      '"task": {"type": "worker", "index": 1}}'})
        >>> spec["task"]
        {'type': 'worker', 'index': 1}
        >>> cluster_spec({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'})
        Traceback (most recent call last):
        ...
        catdog.errors.InvalidArgumentError: TF_CONFIG has no "task" ...
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not text:
        return None
    example = (
        'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"TF_CONFIG is not valid JSON ({error}); {example}.") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise InvalidArgumentError(f'TF_CONFIG has no "cluster" of task lists; {example}.')
    cluster = spec["cluster"]
    if "ps" in cluster:
        raise InvalidArgumentError(
            'TF_CONFIG\'s cluster has "ps" tasks: parameter-server training is not supported. '
            'catdog trains with MultiWorkerMirroredStrategy: list every machine under "worker" '
            '(and at most one under "chief").'
        )
    others = sorted(str(t) for t in cluster if t not in TASK_TYPES)
    if others or not any(cluster.values()):
        raise InvalidArgumentError(
            f'TF_CONFIG\'s cluster must list "worker" tasks (and at most one "chief"), and '
            f"nothing else{f', not {others}' if others else ''}; {example}."
        )
    for task_type, hosts in cluster.items():
        if not isinstance(hosts, list) or (task_type == "chief" and len(hosts) > 1):
            one = "a list of one address" if task_type == "chief" else "a list of addresses"
            raise InvalidArgumentError(
                f"TF_CONFIG's cluster[{task_type!r}] must be {one}, got {hosts!r}; {example}."
            )
        for index, address in enumerate(hosts):
            if parse_address(address) is None:
                raise InvalidArgumentError(
                    f"TF_CONFIG's cluster[{task_type!r}][{index}] is {address!r}: each task's "
                    'address must be a "host:port" string with a port from 1 to 65535, e.g. '
                    '"10.0.0.2:12345".'
                )
    addresses = [a for hosts in cluster.values() for a in hosts]
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise InvalidArgumentError(
            f"TF_CONFIG's cluster gives the address {repeated[0]} to several tasks: each task "
            "needs its own host:port."
        )
    task = spec.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise InvalidArgumentError(
            f'TF_CONFIG has no "task" with a "type" and an "index" (this process\'s place in '
            f"the cluster); {example}."
        )
    hosts = cluster.get(task["type"]) if isinstance(task["type"], str) else None
    index = task["index"]
    if not isinstance(hosts, list) or not (
        isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(hosts)
    ):
        raise InvalidArgumentError(
            f"TF_CONFIG's task {task} is not in its cluster {cluster}: the type must be one "
            "of the cluster's task types and the index must count from 0 within its list."
        )
    return spec


def wait_for_peers(
    peers: dict[str, str],
    timeout: float = DEFAULT_CLUSTER_TIMEOUT,
    *,
    who: str = "catdog",
    listen: str | None = None,
    hint: str = "",
) -> None:
    """Wait until every address of ``peers`` (``{"worker 1": "host:port"}``) accepts a TCP
    connection; else raise [`ClusterError`][catdog.errors.ClusterError] after ``timeout``
    seconds, naming the ones that did not answer.

    Logs what it waits for. SIGINT raises ``KeyboardInterrupt`` and SIGTERM a ``ClusterError``
    within a second (TensorFlow's and KerasTuner's own waits ignore both). With ``listen``
    (this process's ``"host:port"``) it answers on that port meanwhile, so that workers
    waiting for each other all see each other; the port is free again when it returns.

    Examples:
        >>> wait_for_peers({})  # nothing to wait for
    """
    check_positive_number("cluster_timeout", timeout)
    if not peers:
        return
    targets = {name: parse_address(address) for name, address in peers.items()}
    unusable = [f"{name}: {peers[name]!r}" for name, target in targets.items() if target is None]
    if unusable:
        raise InvalidArgumentError(
            f"Not a host:port address with a port from 1 to 65535: {', '.join(unusable)}."
        )
    listed = ", ".join(f"{name} at {address}" for name, address in peers.items())
    logger.info("%s: waiting up to %g s for %s", who, timeout, listed)
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            _sigterm_raises(f"{who}: stopped by SIGTERM while waiting for {listed}.")
        )
        if listen is not None:
            stack.enter_context(_listening(listen, who))
        next_report = time.monotonic() + 60
        while targets:
            for name, (host, port) in list(targets.items()):
                left = max(deadline - time.monotonic(), 0.05)
                try:
                    socket.create_connection((host, port), timeout=min(1.0, left)).close()
                except OSError as error:
                    errors[name] = getattr(error, "strerror", None) or str(error) or "no answer"
                else:
                    del targets[name]
            now = time.monotonic()
            if not targets:
                break
            if now >= deadline:
                missing = ", ".join(
                    f"{name} at {peers[name]} ({errors.get(name, 'no answer')})" for name in targets
                )
                raise ClusterError(
                    f"{who}: no answer within {timeout:g} s from {missing}. {hint}".rstrip()
                )
            if now >= next_report:
                logger.info(
                    "%s: still waiting for %s (%.0f s left)",
                    who,
                    ", ".join(targets),
                    deadline - now,
                )
                next_report = now + 60
            time.sleep(min(0.5, max(deadline - now, 0.0)))
    logger.info("%s: %s answered", who, "everyone" if len(peers) > 1 else listed)


@contextlib.contextmanager
def _sigterm_raises(message: str) -> Iterator[None]:
    """In the main thread, turn SIGTERM into a ``ClusterError`` (only where it would kill)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum, frame):
        raise ClusterError(message)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _listening(address: str, who: str) -> Iterator[None]:
    """Accept connections on ``address``'s port (all interfaces) until the block ends."""
    port = parse_address(address)[1]
    try:
        if socket.has_dualstack_ipv6():
            server = socket.create_server(
                ("", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=False
            )
        else:
            server = socket.create_server(("", port))
    except OSError as error:
        raise ClusterError(
            f"{who} cannot listen on port {port}, its address {address} in TF_CONFIG "
            f"({error.strerror or error}): another process holds it; stop that process or give "
            "this task another port in every worker's TF_CONFIG."
        ) from None
    try:
        yield
    finally:
        server.close()


def _cluster_peers(spec: dict) -> tuple[str, str, dict[str, str]]:
    """``(this task's name, its address, {other task's name: address})`` of a TF_CONFIG."""
    task_type, index = spec["task"]["type"], spec["task"]["index"]
    peers = {
        f"{kind} {i}": address
        for kind, hosts in spec["cluster"].items()
        for i, address in enumerate(hosts)
        if (kind, i) != (task_type, index)
    }
    return f"{task_type} {index}", spec["cluster"][task_type][index], peers


_warned_alone = False


def make_strategy(
    name: str | None = None, cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT
) -> tf.distribute.Strategy | None:
    """The strategy ``catdog train --strategy NAME`` trains with (``None``: no strategy).

    ``"none"`` trains in this process without a strategy; ``"mirrored"`` on every GPU (or the
    CPU) of this machine; ``"multi_worker"`` on the cluster that ``TF_CONFIG`` describes
    (a [`MultiWorkerStrategy`][catdog.training.distribute.MultiWorkerStrategy]; call this at program
    start, before any other TensorFlow operation). ``None`` picks ``"mirrored"`` when several
    GPUs are visible, else ``"none"``.

    ``"multi_worker"`` first waits up to ``cluster_timeout`` seconds for every other task of
    ``TF_CONFIG`` to start (see [`wait_for_peers`][catdog.training.distribute.wait_for_peers]) and
    raises [`ClusterError`][catdog.errors.ClusterError] if one does not. Any other strategy
    with ``TF_CONFIG`` set logs a warning: this process trains alone.

    Examples:
        >>> make_strategy("none") is None
        True
    """
    check_strategy(name)
    check_positive_number("cluster_timeout", cluster_timeout)
    if name is None:
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"
    if name != "multi_worker":
        global _warned_alone
        if os.environ.get("TF_CONFIG") and not _warned_alone:
            _warned_alone = True  # once: run_training may make the strategy again
            logger.warning(
                "TF_CONFIG is set but the strategy is %s: this process trains alone. Pass "
                '--strategy multi_worker (strategy="multi_worker") to train on its cluster, '
                "or unset TF_CONFIG.",
                name,
            )
        return None if name == "none" else tf.distribute.MirroredStrategy()
    spec = cluster_spec()
    if spec is None:
        raise InvalidArgumentError(
            "--strategy multi_worker needs the TF_CONFIG environment variable describing the "
            "cluster and this worker's place in it (see the distributed training guide)."
        )
    task, address, peers = _cluster_peers(spec)
    wait_for_peers(
        peers,
        cluster_timeout,
        who=task,
        listen=address,
        hint="Start the same command on every task of TF_CONFIG, check its addresses and that "
        "their ports are open, or wait longer with --cluster-timeout.",
    )
    try:
        return MultiWorkerStrategy()
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        raise ClusterError(
            f"{task} could not form the cluster of TF_CONFIG ({type(error).__name__}): a "
            "worker stopped while it started. Restart every worker with the same command."
        ) from error


def strategy_scope(strategy: tf.distribute.Strategy | None):
    """A fresh ``strategy.scope()`` (a scope cannot be entered twice), or a null context.

    Examples:
        ```python
        with strategy_scope(strategy):
            model = build_model("baseline")
        ```
    """
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def task_of(strategy: tf.distribute.Strategy | None) -> tuple[str | None, int | None]:
    """``(task type, index)`` of this process in the strategy's cluster, or ``(None, None)``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True where this process writes the run's files: the ``chief`` task, or worker 0 of a
    cluster without one (TensorFlow's rule), or any process that is not in a cluster.

    Examples:
        >>> is_chief(None)
        True
    """
    task_type, task_id = task_of(strategy)
    if task_type is None:
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    first_worker = task_type == "worker" and task_id == 0 and "chief" not in cluster
    return task_type == "chief" or first_worker


def describe_task(strategy: tf.distribute.Strategy | None) -> str:
    """``"worker 1"``, ``"chief 0"``...: this process's name in the cluster (``""`` outside one)."""
    task_type, task_id = task_of(strategy)
    return "" if task_type is None else f"{task_type} {task_id}"


@contextlib.contextmanager
def scratch_folder(strategy: tf.distribute.Strategy | None) -> Iterator[Path | None]:
    """``None`` on the chief; on another worker a temporary folder, deleted afterwards.

    A worker writes its checkpoints and backups there, as TensorFlow's multi-worker guide
    prescribes, so only the chief's files reach the shared run folder.

    Examples:
        >>> with scratch_folder(None) as scratch:
        ...     print(scratch)
        None
    """
    if is_chief(strategy):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix=f"catdog-{describe_task(strategy).replace(' ', '')}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shard_by_example(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with the ``DATA`` auto-shard policy: each worker keeps its share of every
    global batch, so each example is seen once per epoch across the cluster.

    catdog's datasets read images from a list of file names, which file-based sharding cannot
    split; and every worker shuffles with the same seed, so the shares do not overlap.

    Examples:
        ```python
        train_data = shard_by_example(splits.train)
        ```
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def lost_workers_as_errors(strategy: tf.distribute.Strategy | None) -> Iterator[None]:
    """Turn the errors of a cluster that lost a worker into a
    [`ClusterError`][catdog.errors.ClusterError] saying how to resume (TensorFlow cannot take
    a worker back into a running cluster)."""
    if task_of(strategy)[0] is None:
        yield
        return
    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
    ) as error:
        raise ClusterError(
            f"{describe_task(strategy)} lost contact with the cluster ({type(error).__name__}): "
            "another worker stopped or cannot be reached. Restart every worker with the same "
            "command: training resumes from the last finished epoch."
        ) from error


FAILED = -1
"""What a worker that raised contributes to [`agree`][catdog.training.distribute.agree]."""


def values_of_workers(strategy: tf.distribute.Strategy | None, value: int) -> list[int]:
    """Every replica's ``value`` in task order (one per worker with one device each), or
    ``[value]`` outside a cluster.

    A collective operation: every worker of the cluster must call it, in the same order as
    the others.
    """
    if task_of(strategy)[0] is None:
        return [value]
    with lost_workers_as_errors(strategy):
        local = strategy.run(lambda: tf.constant([value], dtype=tf.int64))
        return [int(v) for v in strategy.gather(local, axis=0).numpy()]


def agree(strategy: tf.distribute.Strategy | None, value: int, what: str) -> None:
    """Check that every worker decided the same ``value`` (a collective, like
    [`values_of_workers`][catdog.training.distribute.values_of_workers]); else raise
    [`ClusterError`][catdog.errors.ClusterError] on every worker.

    Workers decide from the files they read (the run folder, the chief's backup); a worker
    that sees other files would otherwise train out of step with the rest.

    Examples:
        >>> agree(None, 3, "the epoch to resume from")  # outside a cluster: nothing to check
    """
    values = values_of_workers(strategy, value)
    if len(set(values)) == 1:
        return
    task = describe_task(strategy)
    if FAILED in values:
        raise ClusterError(
            f"Another worker of the cluster failed before training (its own output says why), "
            f"so {task} stops too. Fix the problem and restart every worker."
        )
    raise ClusterError(
        f"The workers disagree on {what} ({values}, in task order), so {task} stops. Every "
        "worker must see the same --out (on shared storage) and the same data."
    )


@contextlib.contextmanager
def failures_shared(strategy: tf.distribute.Strategy | None) -> Iterator[None]:
    """Let a worker that raises in the block tell the others, which would otherwise wait for
    it forever; the others learn it at their next [`agree`][catdog.training.distribute.agree]."""
    try:
        yield
    except Exception:
        with contextlib.suppress(Exception):  # keep the worker's own error
            values_of_workers(strategy, FAILED)
        raise


def weights_digest(model: keras.Model) -> str:
    """A SHA-256 of the model's weights: equal on every worker of a synchronous cluster.

    Examples:
        ```python
        weights_digest(model)[:12]
        # '5e77cf112bbb'
        ```
    """
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()
