"""End-to-end jobs built from the layers below: the demo (:mod:`.demo`), the loss ablation
(:mod:`.ablation`) and the benchmark helpers (:mod:`.benchmarking`).

The demo and the ablation take their training configs from the experiment registry
(:mod:`sagim_tf.training.experiments`: ``demo-cpu``, ``ablation/*``) and report progress
through :mod:`logging`; the command line shows those records.
"""
