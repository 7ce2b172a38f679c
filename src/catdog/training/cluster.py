"""The cluster of a multi-worker run: ``TF_CONFIG`` read and checked, and the wait for peers.

[`cluster_spec`][catdog.training.cluster.cluster_spec] parses and validates ``TF_CONFIG`` up
front, so that a mistake in it is one clear line instead of a hang or a TensorFlow traceback;
[`wait_for_peers`][catdog.training.cluster.wait_for_peers] waits, for a stated and bounded
time, until the other tasks answer. [`make_strategy`][catdog.training.distribute.make_strategy]
does both before it builds the strategy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

from catdog._rules import DEFAULT_CLUSTER_TIMEOUT, check_positive_number
from catdog.errors import ClusterError, InvalidArgumentError

logger = logging.getLogger("catdog")

TASK_TYPES = ("chief", "worker")
"""The task types of a catdog cluster: at most one ``chief`` and any number of ``worker``s."""

_EXAMPLE = (
    'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


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
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(f"TF_CONFIG is not valid JSON ({error}); {_EXAMPLE}.") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise InvalidArgumentError(f'TF_CONFIG has no "cluster" of task lists; {_EXAMPLE}.')
    _check_task_types(spec["cluster"])
    _check_addresses(spec["cluster"])
    _check_task(spec.get("task"), spec["cluster"])
    return spec


def _check_task_types(cluster: dict) -> None:
    """Refuse ``ps`` tasks, task types other than ``chief``/``worker``, and an empty cluster."""
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
            f"nothing else{f', not {others}' if others else ''}; {_EXAMPLE}."
        )


def _check_addresses(cluster: dict) -> None:
    """Each task type a list (``chief``: of one), each address a distinct ``host:port``."""
    for task_type, hosts in cluster.items():
        if not isinstance(hosts, list) or (task_type == "chief" and len(hosts) > 1):
            one = "a list of one address" if task_type == "chief" else "a list of addresses"
            raise InvalidArgumentError(
                f"TF_CONFIG's cluster[{task_type!r}] must be {one}, got {hosts!r}; {_EXAMPLE}."
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


def _check_task(task, cluster: dict) -> None:
    """``task`` has a ``type`` and an ``index`` that name one of the cluster's tasks."""
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise InvalidArgumentError(
            f'TF_CONFIG has no "task" with a "type" and an "index" (this process\'s place in '
            f"the cluster); {_EXAMPLE}."
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


def cluster_peers(spec: dict) -> tuple[str, str, dict[str, str]]:
    """``(this task's name, its address, {other task's name: address})`` of a TF_CONFIG.

    Examples:
        >>> cluster_peers({"cluster": {"worker": ["a:1", "b:2"]},
        ...                "task": {"type": "worker", "index": 1}})
        ('worker 1', 'b:2', {'worker 0': 'a:1'})
    """
    task_type, index = spec["task"]["type"], spec["task"]["index"]
    peers = {
        f"{kind} {i}": address
        for kind, hosts in spec["cluster"].items()
        for i, address in enumerate(hosts)
        if (kind, i) != (task_type, index)
    }
    return f"{task_type} {index}", spec["cluster"][task_type][index], peers


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

    Args:
        peers: the tasks to wait for, by name, each a ``"host:port"`` string.
        timeout: seconds to wait for all of them (positive).
        who: this process's name in the log and in the error.
        listen: this process's own ``"host:port"`` to answer on while waiting, or ``None``.
        hint: what to do, appended to the error when a peer does not answer.

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
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            _sigterm_raises(f"{who}: stopped by SIGTERM while waiting for {listed}.")
        )
        if listen is not None:
            stack.enter_context(_listening(listen, who))
        _poll_until_answered(targets, peers, timeout, who, hint)
    logger.info("%s: %s answered", who, "everyone" if len(peers) > 1 else listed)


def _poll_until_answered(targets: dict, peers: dict, timeout: float, who: str, hint: str) -> None:
    """Try every target in turn until all answered (removing them from ``targets``), logging
    progress every minute; raise ``ClusterError`` naming the rest after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}
    next_report = time.monotonic() + 60
    while targets:
        _try_each(targets, deadline, errors)
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
                "%s: still waiting for %s (%.0f s left)", who, ", ".join(targets), deadline - now
            )
            next_report = now + 60
        time.sleep(min(0.5, max(deadline - now, 0.0)))


def _try_each(targets: dict, deadline: float, errors: dict[str, str]) -> None:
    """Connect once to each target: drop those that answer, note why the others did not."""
    for name, (host, port) in list(targets.items()):
        left = max(deadline - time.monotonic(), 0.05)
        try:
            socket.create_connection((host, port), timeout=min(1.0, left)).close()
        except ClusterError:
            raise  # SIGTERM arrived during the attempt (a ClusterError is an OSError too)
        except OSError as error:
            errors[name] = getattr(error, "strerror", None) or str(error) or "no answer"
        else:
            del targets[name]


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
