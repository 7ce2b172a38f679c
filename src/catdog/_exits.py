"""How a ``catdog`` command ends, besides 0 for success and 2 for an error a user can fix.

``catdog predict`` exits with ``SKIPPED_STATUS`` (3: not 1, which a Python crash exits with)
when some images could not be read (their rows say why) and the others were scored. Ctrl-C,
and SIGTERM for the commands that clean up after themselves (``SIGTERM_STOPS``), raise
``KeyboardInterrupt`` in the main thread, so that the command's temporary files are removed on
the way out; ``catdog.cli`` then prints one line that says what is true of the stopped command
(does it resume?) and exits 130 (Ctrl-C) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("catdog")

SKIPPED_STATUS = 3
"""``catdog predict``'s exit status when some images were skipped (0 when all were scored)."""


def noting_skipped(predictions: Iterable, skipped: list[str]) -> Iterator:
    """``predictions``, the path of each one that could not be read (its ``error`` set)
    appended to ``skipped`` as it passes.

    Examples:
        >>> from types import SimpleNamespace as P  # stand-ins for predictions
        >>> skipped = []
        >>> rows = [P(path="a.jpg", error="truncated"), P(path="b.jpg", error=None)]
        >>> len(list(noting_skipped(rows, skipped))), skipped
        (2, ['a.jpg'])
    """
    for prediction in predictions:
        if prediction.error is not None:
            skipped.append(prediction.path)
        yield prediction


class ProgressLine:
    """``done/total images`` on stderr, with the time so far and per image: rewritten in place
    on a terminal (every 0.05 s at most), a line every 10 s at most in a log; the last count is
    always shown. No Keras (its ``Progbar``), so that ``catdog predict model.tflite`` imports
    neither it nor TensorFlow.

    Examples:
        >>> bar = ProgressLine(64)
        >>> bar.update(64)  # on stderr: 64/64 images, 0s, 0.0 ms/image
    """

    def __init__(self, total: int, unit: str = "image"):
        self.total, self.unit = total, unit
        self.tty = sys.stderr.isatty()
        self.interval = 0.05 if self.tty else 10.0
        self.started = self.shown = time.monotonic()

    def update(self, done: int) -> None:
        """Show ``done`` of the total, if the last line is old enough or this is the end."""
        now = time.monotonic()
        if done < self.total and now - self.shown < self.interval:
            return
        self.shown, elapsed = now, now - self.started
        text = (
            f"{done}/{self.total} {self.unit}s, {elapsed:.0f}s, "
            f"{1000 * elapsed / max(done, 1):.1f} ms/{self.unit}"
        )
        end = "\n" if done >= self.total or not self.tty else ""
        print(f"\r{text}" if self.tty else text, end=end, file=sys.stderr, flush=True)


def skipped_status(skipped: list[str], total: int) -> int:
    """``catdog predict``'s exit status: 0 when no image was ``skipped``; else
    ``SKIPPED_STATUS``, after a warning that counts them.

    Examples:
        >>> skipped_status([], 72)
        0
    """
    if not skipped:
        return 0
    logger.warning(
        "%d of %d image(s) could not be read and were skipped: their rows say why (the error "
        "column); exit status %d.",
        *(len(skipped), total, SKIPPED_STATUS),
    )
    return SKIPPED_STATUS


class Terminated(KeyboardInterrupt):
    """A SIGTERM, raised in the main thread as Ctrl-C's ``KeyboardInterrupt`` is (see
    ``sigterm_stops``)."""


SIGTERM_STOPS = ("predict", "evaluate")
"""The commands that SIGTERM stops as Ctrl-C does (their temporary files removed), instead of
killing them."""


@contextmanager
def sigterm_stops(wanted: bool) -> Iterator[None]:
    """For the ``with`` block, SIGTERM raises ``Terminated`` (where ``wanted``, in the main
    thread, and only where SIGTERM would kill); a second SIGTERM kills as usual. SIGTERM's
    default is put back after.

    Examples:
        >>> with sigterm_stops(True):
        ...     signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        False
        >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        True
    """
    if (
        not wanted
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills
        raise Terminated

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stopped(args: argparse.Namespace, stop: KeyboardInterrupt) -> tuple[str, int]:
    """``(the line to print, the exit status)`` of a command stopped by ``stop``.

    Examples:
        >>> stopped(argparse.Namespace(command="train"), KeyboardInterrupt())
        ('catdog: interrupted; rerun the same command to resume.', 130)
    """
    if isinstance(stop, Terminated):
        return f"catdog: stopped by SIGTERM; {_after_stop(args)}", 143
    return f"catdog: interrupted; {_after_stop(args)}", 130


def _after_stop(args: argparse.Namespace) -> str:
    """What is true of a stopped command, and what to do."""
    if args.command in ("train", "tune"):
        return "rerun the same command to resume."
    if args.command == "predict":
        done = (
            f"{args.output} was not written (a file already there is unchanged)"
            if args.output
            else "the rows printed so far stand"
        )
        return f"{done}. catdog predict does not resume: rerun the command to start again."
    if args.command == "evaluate":
        return "catdog evaluate does not resume: rerun the command to score the model again."
    return "rerun the command to start again."
