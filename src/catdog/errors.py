"""Exceptions raised by catdog.

Every catdog error subclasses a built-in exception (``ValueError``, ``FileNotFoundError`` or
``ConnectionError``), so callers can catch either the precise catdog class or the usual
built-in one.
"""

from __future__ import annotations


class CatdogError(Exception):
    """Base class of every error catdog raises on purpose."""


class InvalidArgumentError(CatdogError, ValueError):
    """An argument has a value catdog cannot use; the message says what was expected."""


class DatasetError(CatdogError, ValueError):
    """A dataset folder or archive does not have the layout or content catdog needs."""


class DatasetNotFoundError(CatdogError, FileNotFoundError):
    """A dataset folder or archive does not exist."""


class InputFileNotFoundError(CatdogError, FileNotFoundError):
    """A model, image or weights file given as input does not exist."""


class IntegrityError(CatdogError, ValueError):
    """A downloaded file has the wrong size or checksum."""


class DownloadError(CatdogError, ConnectionError):
    """A download failed (no network, server error, interrupted transfer)."""


class MissingExtraError(CatdogError, ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""


class OutputError(CatdogError, OSError):
    """An output path cannot be written: under a file, not writable, or it holds other data."""


class ClusterError(CatdogError, ConnectionError):
    """A worker of a multi-worker cluster went away; restart every worker to resume."""


class BusyError(CatdogError, RuntimeError):
    """Another catdog process is using the same run folder; wait for it or pick another."""


class TrainingDivergedError(CatdogError, ArithmeticError):
    """Training produced a non-finite loss or weights; the message suggests a fix.

    ``history`` holds the per-epoch metrics recorded until training stopped.
    """

    def __init__(self, message: str, history: dict | None = None):
        super().__init__(message)
        self.history = history or {}
