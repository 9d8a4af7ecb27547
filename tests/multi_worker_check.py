"""Run by tests/test_multi_worker.py in a fresh process: one training run, weights recorded.

``python tests/multi_worker_check.py CONFIG OUT_NPZ`` calls
:func:`sagim_tf.training.run.run_training` on the config file (with ``TF_CONFIG`` in the
environment when the config says ``multi_worker``) and writes, to ``OUT_NPZ``, G's, D's and
both optimizers' variables as training began (``start/...``) and as it ended (``end/...``),
plus the run's summary (``meta``: G steps, replicas, chief, history). ``OUT_NPZ`` lies
outside the run folder: the test writes it, not the library.
"""

import json
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sagim_tf.training.config import load_config  # noqa: E402
from sagim_tf.training.run import run_training  # noqa: E402


def variables(model) -> dict:
    parts = {
        "generator": model.generator.weights,
        "discriminator": model.discriminator.weights,
        "g_optimizer": model.g_optimizer.variables,
        "d_optimizer": model.d_optimizer.variables,
    }
    return {f"{p}/{i}": np.array(v) for p, vs in parts.items() for i, v in enumerate(vs)}


class StartWeights(keras.callbacks.Callback):
    """The variables as ``fit`` begins (after a resume's load, before the first step)."""

    def __init__(self):
        super().__init__()
        self.arrays = {}

    def on_train_begin(self, logs=None):
        self.arrays = variables(self.model)


def main(config_path, out_path):
    cfg = load_config(config_path)
    start = StartWeights()
    summary = run_training(cfg, extra_callbacks=[start])
    model = summary.pop("model_object")
    arrays = {f"start/{k}": v for k, v in start.arrays.items()}
    arrays.update({f"end/{k}": v for k, v in variables(model).items()})
    meta = {k: summary[k] for k in ("g_steps", "replicas", "chief", "history", "outputs")}
    np.savez(out_path, meta=json.dumps(meta), **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
