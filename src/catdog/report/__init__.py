"""Judging a model: `evaluation` (reports), `plotting` (figures) and `interpret` (Grad-CAM)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
