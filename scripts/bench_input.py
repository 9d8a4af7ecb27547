"""Benchmark: SAM input pipeline images/s next to the train step's consumption (batch 4, 256x192).

It writes a synthetic COCO set and builds SAM from it in a temporary folder (or uses
``--data`` if given), then measures:

- ``input_images_per_s``: :func:`sagim_tf.data.train_dataset` (parallel decode, shuffle,
  flip, prefetch) iterated alone, after a warm-up;
- ``train_images_per_s``: the train step fed one constant in-memory batch, so that input
  costs nothing. When :class:`sagim_tf.trainer.SaGIM` is importable it is the real SaGIM
  step through ``model.fit``; otherwise a stand-in step (a small conv generator trained
  through the frozen estimator with BCE to the guidance and an L1 content term), which is
  lighter than SaGIM's, so the ratio it gives is a lower bound. The JSON says which.

Prints one JSON object. Example::

    python scripts/bench_input.py --images 48 --batches 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stand_in_estimator():
    """A fixed-weight, differentiable local-contrast map (used when no spec is available)."""
    import keras
    import numpy as np

    r = np.arange(7) - 3
    g1 = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / 2.0)
    g2 = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / 12.5)
    dog = g1 / g1.sum() - g2 / g2.sum()
    k = np.zeros((7, 7, 3, 2), np.float32)
    k[..., 0] = dog[..., None] * np.array([0.299, 0.587, 0.114])
    k[..., 1] = -k[..., 0]
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 7, padding="same", use_bias=False, name="dog")(inp)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(1, 1, name="gain")(x)
    x = keras.layers.AveragePooling2D(5, strides=1, padding="same")(x)
    x = keras.layers.ReLU(max_value=1.0)(x)
    model = keras.Model(inp, x, name="bench_contrast")
    model.get_layer("dog").set_weights([k])
    model.get_layer("gain").set_weights([np.full((1, 1, 2, 1), 6.0, np.float32), np.array([0.02], np.float32)])
    model.trainable = False
    return model


def get_estimator(spec):
    from sagim_tf.errors import SagimError
    from sagim_tf.estimators import build_estimator

    try:
        return build_estimator(spec), spec
    except SagimError as exc:
        print(f"bench_input: estimator {spec!r} unavailable ({exc}); using the stand-in "
              "local-contrast estimator", file=sys.stderr)
        return stand_in_estimator(), "stand-in:local-contrast"


def time_input(data_dir, batch, size, n_batches):
    from sagim_tf.data import train_dataset

    ds = iter(train_dataset(data_dir, batch_size=batch, size=size, seed=0, repeat=True,
                            deterministic=False, drop_remainder=True))
    for _ in range(5):
        next(ds)
    t = time.perf_counter()
    for _ in range(n_batches):
        x, g = next(ds)
    _ = float(x[0, 0, 0, 0]) + float(g[0, 0, 0, 0])
    return n_batches * batch / (time.perf_counter() - t)


def time_sagim(estimator, image, guidance, steps):
    from sagim_tf.trainer import SaGIM  # noqa: F401 (ImportError -> stand-in)
    import tensorflow as tf

    model = SaGIM(estimator=estimator)
    model.compile()
    ds = tf.data.Dataset.from_tensors((image, guidance)).repeat()
    model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    t = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * int(image.shape[0]) / (time.perf_counter() - t), "SaGIM.train_step via model.fit (paper loss weights)"


def time_stand_in(estimator, image, guidance, steps):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    i = keras.Input((None, None, 3))
    s = keras.Input((None, None, 1))
    x = keras.layers.Concatenate()([i, s])
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    out = keras.layers.Lambda(lambda t: tf.clip_by_value(t[0] + t[1], 0.0, 1.0))([i, x])
    gen = keras.Model([i, s], out)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(gen.trainable_variables)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def step(img, gd):
        with tf.GradientTape() as tape:
            edited = gen([img, gd], training=True)
            pred = estimator(edited, training=False)
            loss = 5.0 * bce(gd, pred) + 5.0 * tf.reduce_mean(tf.abs(edited - img))
        grads = tape.gradient(loss, gen.trainable_variables)
        opt.apply(grads, gen.trainable_variables)
        return loss

    for _ in range(2):
        step(image, guidance)
    t = time.perf_counter()
    for _ in range(steps):
        loss = step(image, guidance)
    float(loss)
    return (steps * int(image.shape[0]) / (time.perf_counter() - t),
            "stand-in step: 5-conv residual generator + frozen estimator, BCE + L1 (SaGIM not on this branch)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="an existing build-sam folder (default: build a synthetic one)")
    p.add_argument("--images", type=int, default=48, help="synthetic scenes to generate")
    p.add_argument("--estimator", default="itti-koch", help="estimator spec (stand-in if unavailable)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("W", "H"))
    p.add_argument("--batches", type=int, default=40, help="input batches to time")
    p.add_argument("--steps", type=int, default=5, help="train steps to time")
    args = p.parse_args(argv)

    import tensorflow as tf

    from sagim_tf.data import BuildConfig, build_sam, generate_synthetic_coco, train_dataset

    size = tuple(args.size)
    estimator, spec = get_estimator(args.estimator)
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="sagim-bench-")
        ann = generate_synthetic_coco(os.path.join(tmp.name, "synth"), args.images, seed=0, size=(320, 240))
        data = os.path.join(tmp.name, "sam")
        t = time.perf_counter()
        build_sam(os.path.join(tmp.name, "synth", "images"), [ann], data, estimator,
                  BuildConfig(size=size, train=args.images, test=0, shard_size=8),
                  estimator_spec=spec, progress=False, log=lambda m: None)
        build_s = time.perf_counter() - t
    else:
        build_s = None

    input_ips = time_input(data, args.batch, size, args.batches)
    image, guidance = next(iter(train_dataset(data, batch_size=args.batch, size=size, seed=0,
                                              repeat=True, drop_remainder=True)))
    try:
        train_ips, what = time_sagim(estimator, image, guidance, args.steps)
    except ImportError:
        train_ips, what = time_stand_in(estimator, image, guidance, args.steps)
    result = {
        "batch": args.batch,
        "size_wh": list(size),
        "estimator": spec,
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "build_sam_seconds": None if build_s is None else round(build_s, 2),
        "input_images_per_s": round(input_ips, 1),
        "train_images_per_s": round(train_ips, 2),
        "input_over_train": round(input_ips / train_ips, 1),
        "train_step_measured": what,
    }
    print(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
