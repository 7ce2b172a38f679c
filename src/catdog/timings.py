"""Where a job's time went: seconds per phase, for a run's ``report.json`` and model card, an
audit's ``audit.json``, and the last line the command line prints."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


class Timings:
    """Seconds per phase of a job, in the order the phases first ran.

    A phase entered again adds to its time. ``started_at`` is the job's start on
    ``time.perf_counter()``'s clock; [`total`][catdog.timings.Timings.total] counts from it
    (plus the process's own start-up, when recorded), so time outside every phase is shown as
    ``other``.

    Examples:
        >>> timings = Timings()
        >>> with timings.phase("data"):
        ...     pass
        >>> list(timings.seconds)
        ['data']
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started_at = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time the block takes to phase ``name``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    @classmethod
    def from_dict(cls, recorded: dict[str, float]) -> Timings:
        """Timings that go on from ``recorded`` (a [`to_dict`][catdog.timings.Timings.to_dict]):
        its phases kept, its total counted as already spent.

        Examples:
            >>> Timings.from_dict({"data": 1.0, "total": 1.5}).to_dict()["total"] >= 1.5
            True
        """
        timings = cls()
        for name, seconds in recorded.items():
            if name not in ("total", "other"):
                timings.add(name, seconds)
        timings.started_at -= recorded.get("total", 0.0) - recorded.get(STARTUP, 0.0)
        return timings

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to phase ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + max(float(seconds), 0.0)

    def to_dict(self) -> dict[str, float]:
        """Every phase's seconds (rounded to milliseconds), then ``other`` and ``total``."""
        total = self.total()
        shown = {name: round(s, 3) for name, s in self.seconds.items()}
        other = total - sum(self.seconds.values())
        if other >= 0.001:
            shown["other"] = round(other, 3)
        return {**shown, "total": round(total, 3)}

    def total(self) -> float:
        """Seconds from the job's start (and the process's start-up, when recorded) to now."""
        return time.perf_counter() - self.started_at + self.seconds.get(STARTUP, 0.0)

    def line(self) -> str:
        """One line for a person: the total, then each phase, largest first."""
        return describe(self.to_dict())


STARTUP = "start-up"
"""The phase from the process's start to the job's: the interpreter, catdog's command line."""


def describe(timings: dict[str, float], *, images: int | None = None) -> str:
    """A ``timings`` dict (as in ``report.json``) in one line, the largest phases first; with
    ``images``, how many images per second the whole took.

    Examples:
        >>> describe({"data": 0.5, "training": 4.0, "total": 4.5})
        '4.5 s: training 4.0 s, data 0.5 s'
        >>> describe({"features": 2.0, "total": 2.5}, images=100)
        '2.5 s (40 images/s): features 2.0 s, other 0.5 s'
    """
    total = timings.get("total", sum(s for name, s in timings.items()))
    shown = {name: s for name, s in timings.items() if name != "total"}
    rest = total - sum(shown.values())
    if rest >= 0.05 and "other" not in shown:
        shown["other"] = rest
    phases = sorted(shown.items(), key=lambda item: -item[1])
    rate = f" ({images / total:.3g} images/s)" if images and total > 0 else ""
    return f"{total:.1f} s{rate}: " + ", ".join(f"{name} {s:.1f} s" for name, s in phases)


def process_age() -> float | None:
    """Seconds since this process started, from ``/proc`` (``None`` where there is none).

    Examples:
        >>> age = process_age()
        >>> age is None or age >= 0
        True
    """
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks
    except (OSError, ValueError, IndexError):
        return None
    return max(now - started, 0.0)
