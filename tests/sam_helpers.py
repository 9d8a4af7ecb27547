"""Shared helpers for the dataset tests: a small deterministic estimator and tiny datasets.

Run as a script, it is the ``sagim`` CLI with a crash planted in the SAM builder, for the
kill-and-resume test: ``python -m tests.sam_helpers --die-at-record N build-sam ...`` ends
the process abruptly (``os._exit(KILLED)``, no clean-up) when the N-th record of the run is
about to be serialized, that is in the middle of a shard.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np

from sagim_tf.cli import main
from sagim_tf.data import BuildConfig, GuidanceConfig, build_sam, generate_synthetic_coco
from sagim_tf.data.sam import shards
from sagim_tf.estimators import register_estimator

TEST_SPEC = "test-contrast"


def _gaussian(k, sigma):
    r = np.arange(k) - k // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def contrast_estimator():
    """A fixed-weight Keras model: |centre - surround| luminance contrast, in [0, 1].

    Built from standard layers only, so it also saves as a ``.keras`` file and loads with the
    registry's ``keras:PATH`` spec in a subprocess.
    """
    k = 7
    dog = _gaussian(k, 1.0) - _gaussian(k, 2.5)
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    kernel = np.zeros((k, k, 3, 2), np.float32)
    kernel[..., 0] = dog[:, :, None] * lum[None, None]
    kernel[..., 1] = -kernel[..., 0]
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, k, padding="same", use_bias=False, name="dog")(inp)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(1, 1, use_bias=True, name="gain")(x)
    x = keras.layers.AveragePooling2D(5, strides=1, padding="same")(x)
    x = keras.layers.ReLU(max_value=1.0)(x)
    model = keras.Model(inp, x, name="test_contrast")
    model.get_layer("dog").set_weights([kernel])
    model.get_layer("gain").set_weights(
        [np.full((1, 1, 2, 1), 6.0, np.float32), np.array([0.02], np.float32)]
    )
    model.trainable = False
    return model


def register_test_estimator():
    register_estimator(TEST_SPEC, contrast_estimator, help="tests: fixed local-contrast map")
    return TEST_SPEC


def save_test_estimator(path):
    contrast_estimator().save(os.fspath(path))
    return f"keras:{os.fspath(path)}"


def tiny_build(
    root,
    n_images=36,
    seed=5,
    scene=(96, 72),
    size=(64, 48),
    train=8,
    test=6,
    shard_size=3,
    sigma_fraction=0.05,
    **config,
):
    """A synthetic COCO set and its SAM build under ``root``; returns (synth_dir, out_dir, manifest)."""
    spec = register_test_estimator()
    synth = os.path.join(root, "synth")
    out = os.path.join(root, "sam")
    ann = generate_synthetic_coco(synth, n_images, seed=seed, size=scene)
    cfg = BuildConfig(
        size=size,
        train=train,
        test=test,
        seed=seed,
        shard_size=shard_size,
        guidance=GuidanceConfig(sigma_fraction=sigma_fraction),
        **config,
    )
    manifest = build_sam(
        os.path.join(synth, "images"), [ann], out, spec, cfg, progress=False, log=lambda m: None
    )
    return synth, out, manifest


def files_bytes(folder):
    """Relative path -> bytes of every file under ``folder``."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = f.read()
    return out


#: The exit status of a process ended by ``--die-at-record``.
KILLED = 75


def _die_at_record(n: int) -> None:
    """Make the SAM builder's process end abruptly when its ``n``-th record is serialized."""
    serialize = shards.serialize_example
    calls = [0]

    def dying_serialize(record):
        calls[0] += 1
        if calls[0] >= n:
            sys.stderr.flush()
            os._exit(KILLED)
        return serialize(record)

    shards.serialize_example = dying_serialize


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--die-at-record"]:
        _die_at_record(int(argv[1]))
        argv = argv[2:]
    sys.exit(main(argv))
