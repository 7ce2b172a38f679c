"""Fitting models: `fit` (train), `fine_tune`, `callbacks` (best checkpoint, resume state),
`feature_cache` (training the head on cached base features), `lr_finder`, `distribute`
(strategies), `cluster` (TF_CONFIG and waiting for peers) and `tuning` (KerasTuner)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
