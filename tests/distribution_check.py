"""Run by tests/test_distribution.py in a fresh process: the CPU split into two devices.

Trains two identical tiny SaGIM models on the same global batches, one under
``MirroredStrategy(["/cpu:0", "/cpu:1"])`` (2 replicas) and one without a strategy, and
writes the per-step logs and the updated G, D and optimizer variables to an .npz file.

Plain SGD: with Adam, the biases that feed an instance norm (their true gradient is 0)
move by +-lr on the sign of rounding noise, which no two summation orders share.
"""

import json
import os
import sys

import tensorflow as tf

# Before anything else touches the devices.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.helpers import random_batch, tiny_sagim  # noqa: E402

PARTS = ("generator", "discriminator", "estimator", "content_features")


class StepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})


def train(model, dataset):
    record = StepLogs()
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=[record])
    return record.logs, {k: float(v[-1]) for k, v in history.history.items()}


def main(out_path, steps, global_batch):
    image, guidance = random_batch(steps * global_batch, 24, 32, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((image, guidance)).batch(global_batch)

    def optimizers():
        return {
            "g_optimizer": keras.optimizers.SGD(0.05, name="g_optimizer"),
            "d_optimizer": keras.optimizers.SGD(0.05, name="d_optimizer"),
        }

    reference = tiny_sagim(seed=0)
    reference.compile(**optimizers())
    start = {p: getattr(reference, p).get_weights() for p in PARTS}

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tiny_sagim(seed=1)  # other initial weights, overwritten below
        mirrored.compile(**optimizers())
    for part in PARTS:
        getattr(mirrored, part).set_weights(start[part])

    ref_steps, ref_epoch = train(reference, dataset)
    mir_steps, mir_epoch = train(mirrored, dataset)

    arrays = {}
    for name, model in (("ref", reference), ("mir", mirrored)):
        for part in ("generator", "discriminator"):
            for i, w in enumerate(getattr(model, part).get_weights()):
                arrays[f"{name}/{part}/{i}"] = w
        for opt in ("g_optimizer", "d_optimizer"):
            for i, v in enumerate(getattr(model, opt).variables):
                arrays[f"{name}/{opt}/{i}"] = np.asarray(v)
    for part in ("generator", "discriminator"):
        for i, w in enumerate(start[part]):
            arrays[f"start/{part}/{i}"] = w
    meta = {
        "replicas": strategy.num_replicas_in_sync,
        "ref_steps": ref_steps,
        "mir_steps": mir_steps,
        "ref_epoch": ref_epoch,
        "mir_epoch": mir_epoch,
    }
    np.savez(out_path, meta=json.dumps(meta), **arrays)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
