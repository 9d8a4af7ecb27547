"""Forward time of each saliency estimator E on this machine; prints JSON.

Usage:
    python scripts/bench_estimators.py [--batch 4] [--width 256] [--height 192] [--repeats 10]
        [--salgan PATH]

For each estimator it reports the median and minimum wall time of one forward pass over a
batch, after warm-up: the Keras estimators both eagerly and inside ``tf.function`` (as the
trainer calls E), the OpenCV judges as plain NumPy calls. Without ``--salgan`` the SalGAN
network is timed with random weights (same architecture and cost; say so in reports).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sagim_tf.estimators import build_estimator  # noqa: E402
from sagim_tf.estimators.base import ResizingEstimator  # noqa: E402
from sagim_tf.estimators.salgan import build_salgan_network  # noqa: E402
from sagim_tf.workflows import benchmarking as bm  # noqa: E402


def _time(fn, x, repeats, warmup=2):
    return bm.summary_ms(bm.sample_seconds(lambda: np.asarray(fn(x)).sum(), repeats, warmup))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--salgan", default=None, help="SalGAN weights (.npz or .weights.h5)")
    parser.add_argument("--skip-salgan", action="store_true")
    args = parser.parse_args(argv)

    x = np.random.default_rng(0).random((args.batch, args.height, args.width, 3), dtype=np.float32)
    results = {}

    ik = build_estimator("itti-koch")
    results["itti-koch"] = {
        "eager": _time(ik, x, args.repeats),
        "tf_function": _time(tf.function(ik), x, args.repeats),
        "differentiable": True,
    }
    if not args.skip_salgan:
        if args.salgan:
            sg, weights = build_estimator(f"salgan:{args.salgan}"), args.salgan
        else:
            sg = ResizingEstimator(build_salgan_network(), native_size=(256, 192), name="salgan")
            weights = "random (timing only)"
        results["salgan"] = {
            "eager": _time(sg, x, max(3, args.repeats // 3)),
            "tf_function": _time(tf.function(sg), x, max(3, args.repeats // 3)),
            "differentiable": True,
            "weights": weights,
        }
    for spec in ("spectral-residual", "fine-grained"):
        results[spec] = {
            "numpy": _time(build_estimator(spec), x, args.repeats),
            "differentiable": False,
        }

    report = {
        "what": "saliency estimator forward time, one batch",
        "batch": args.batch,
        "width": args.width,
        "height": args.height,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
        },
        "versions": {"tensorflow": tf.__version__},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
