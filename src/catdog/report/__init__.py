"""Judging a model: `evaluation` (reports), `plotting` (figures), `interpret` (Grad-CAM),
`audit_report` (an audit's findings) and `review` (a page to decide on them in a browser)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
