"""catdog's version: one home, read by the package root, the CLI, run records and exports, and
by the build (pyproject.toml)."""

__version__ = "0.2.0"
