"""Judging a model: `evaluation` (reports), `reliability` (measuring calibration: reliability
diagrams, ECE, risk-coverage; `calibration` is its deprecated old name), `plotting` (figures),
`interpret` (Grad-CAM), `audit_report` (an audit's findings), `markdown` (the one escaper of
names in Markdown) and `review` (a page to decide on findings in a browser)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
