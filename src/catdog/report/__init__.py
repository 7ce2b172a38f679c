"""Judging a model: `evaluation` (reports), `calibration` (measuring calibration: reliability
diagrams, ECE), `plotting` (figures), `interpret` (Grad-CAM), `audit_report` (an audit's
findings), `markdown` (the one escaper of names in Markdown) and `review` (a page to decide on
findings in a browser)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
