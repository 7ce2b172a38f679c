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
    """A dataset folder, archive or model file does not exist."""


class IntegrityError(CatdogError, ValueError):
    """A downloaded file has the wrong size or checksum."""


class DownloadError(CatdogError, ConnectionError):
    """A download failed (no network, server error, interrupted transfer)."""


class MissingExtraError(CatdogError, ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""
