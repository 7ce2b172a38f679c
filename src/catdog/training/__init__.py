"""Fitting models: `fit` (train), `fine_tune`, `callbacks` (best checkpoint, resume state),
`feature_cache` (training the head on cached base features), `prototypes` (setting a few-shot
model), `calibration` (fitting the temperature and the unknown threshold), `class_thresholds`
(one multi-label decision threshold per class), `neighbours` (the k-NN score and its
threshold), `lr_finder`, `distribute` (strategies), `cluster` (TF_CONFIG and waiting for
peers), `tuning` and `search_space` (KerasTuner), and the data audit (`audit`,
`audit_embedding`: its checks on the embedding)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
