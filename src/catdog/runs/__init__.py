"""`catdog train` as a library: `config` (RunConfig and its defaults), `data` (a run's data:
its splits, the demo set), `record` (what a run folder records), `publish` (writing a run
folder all or nothing), `job` (run_training), `evaluate` (evaluate_run: scoring a run's model
as its run did), `card` (the model card), `embeddings` (a run's embeddings, `catdog.embed` and
`similar`) and `suggest` (what to label next)."""

from catdog._lazy import submodule_loader

__getattr__ = submodule_loader(__name__)
