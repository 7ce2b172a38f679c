"""Training on several devices or machines with TensorFlow's own strategies.

``make_strategy`` builds ``tf.distribute.MirroredStrategy`` (the GPUs of one machine) or
``tf.distribute.MultiWorkerMirroredStrategy`` (several machines, described by the
``TF_CONFIG`` environment variable). [`train`][catdog.training.fit.train] and ``catdog train
--strategy`` use them as the TensorFlow multi-worker guide prescribes: every worker runs the
same program on its shard of each epoch, only the chief writes files (the others write to
temporary folders and delete them), and the resume state
([`AtomicBackupAndRestore`][catdog.training.callbacks.AtomicBackupAndRestore]) lets a restarted
cluster go
on from the last finished epoch. Reading ``TF_CONFIG`` and waiting for the other tasks
is [`catdog.training.cluster`][catdog.training.cluster]'s part.

Keras 3's ``fit`` hands ``Strategy.reduce`` a nested batch and reduces scalar metrics along
axis 0, which ``MultiWorkerMirroredStrategy`` refuses (keras-team/keras#20585);
[`MultiWorkerStrategy`][catdog.training.distribute.MultiWorkerStrategy] is that strategy with a
``reduce`` that accepts both. Nothing else is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from catdog._rules import DEFAULT_CLUSTER_TIMEOUT, check_positive_number, check_strategy
from catdog.errors import ClusterError, InvalidArgumentError
from catdog.training.cluster import cluster_peers, cluster_spec, wait_for_peers

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
    ``TF_CONFIG`` to start (see [`wait_for_peers`][catdog.training.cluster.wait_for_peers]) and
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
    task, address, peers = cluster_peers(spec)
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
