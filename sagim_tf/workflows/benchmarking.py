"""Timing helpers shared by the benchmark scripts (medians; everything in one process)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf

from sagim_tf.data import train_dataset


def sample_seconds(fn, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls.

    ``fn`` must block until its work is done (convert results with ``np.asarray``).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median of :func:`sample_seconds`."""
    return statistics.median(sample_seconds(fn, repeats, warmup))


def summary_ms(times: list[float]) -> dict:
    """{"median_ms", "min_ms"} of a list of seconds, for the JSON the scripts print."""
    return {
        "median_ms": round(statistics.median(times) * 1000, 2),
        "min_ms": round(min(times) * 1000, 2),
    }


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul speed through TensorFlow, the yardstick for ratios."""
    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    matmul = tf.function(lambda: tf.matmul(a, b))
    seconds = median_seconds(lambda: matmul().numpy(), repeats=repeats, warmup=2)
    return 2.0 * n**3 / seconds / 1e9


def random_batch(batch: int, size, seed: int = 0):
    """(image, guidance) float32 at size (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    return (
        rng.uniform(size=(batch, h, w, 3)).astype(np.float32),
        rng.uniform(size=(batch, h, w, 1)).astype(np.float32),
    )


def train_step_seconds(model, image, guidance, steps: int = 3) -> float:
    """Seconds per ``train_step`` through ``model.fit`` on a constant in-memory batch.

    The model must be compiled. One warm-up epoch of 2 steps pays for tracing first.
    """
    ds = tf.data.Dataset.from_tensors((image, guidance)).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - t) / steps


def forward_seconds(fn, *inputs, repeats: int = 5) -> float:
    """Median seconds of a traced forward pass ``fn(*inputs)``.

    The inputs are passed as arguments, not captured: a weight-free network (Itti-Koch)
    on captured constants would be constant-folded away by the graph optimiser.
    """
    traced = tf.function(fn)
    tensors = [tf.convert_to_tensor(x) for x in inputs]

    def run():
        out = traced(*tensors)
        out = out if isinstance(out, (list, tuple)) else [out]
        for o in out:
            np.asarray(o)

    return median_seconds(run, repeats=repeats, warmup=1)


def input_images_per_second(data_dir, batch: int, size, n_batches: int = 40) -> float:
    """Images per second from the SAM training pipeline alone (after a warm-up)."""
    ds = train_dataset(
        data_dir, batch_size=batch, size=tuple(size), shuffle=True, flip=True, seed=0, repeat=True
    )
    it = iter(ds)
    for _ in range(3):
        next(it)
    t = time.perf_counter()
    for _ in range(n_batches):
        image, _ = next(it)
        np.asarray(image)
    return n_batches * batch / (time.perf_counter() - t)
