"""Judging a model: `evaluation` (reports), `intervals` (Wilson and bootstrap intervals),
`multilabel_metrics` (multi-label scores: per-class precision, recall, F1 and AP, micro and
macro averages, exact match, Hamming loss; `multilabel_evaluation` scores a model with them),
`reliability` (measuring calibration: reliability
diagrams, ECE, risk-coverage; `calibration` is its deprecated old name), `plotting` (figures),
`interpret` (Grad-CAM), `audit_report` (an audit's findings), `markdown` (the one escaper of
names in Markdown) and `review` (a page to decide on findings in a browser)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
