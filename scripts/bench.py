#!/usr/bin/env python
"""Benchmark SaGIM on this machine and print one JSON, every number from this one run.

- train-step images/s at 256x192, batch 4, with XLA off and on;
- forward times of G, E and the VGG features (and D) on that batch, and the ratio of a
  train step to the forward passes it contains (G x2, E x2, VGG x3, D x3);
- the SAM input pipeline's images/s (a small SAM set is built in a temporary folder unless
  --data is given), next to the train step's consumption;
- this machine's float32 matmul GFLOP/s as the yardstick.

    python scripts/bench.py                      # the default G (base_filters 32)
    python scripts/bench.py --base-filters 16 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import tensorflow as tf  # noqa: E402

from sagim_tf.data import BuildConfig, build_sam, generate_synthetic_coco  # noqa: E402
from sagim_tf.estimators import build_estimator  # noqa: E402
from sagim_tf.models.content_features import ContentFeatures  # noqa: E402
from sagim_tf.models.discriminator import PatchDiscriminator  # noqa: E402
from sagim_tf.models.generator import SaGIMGenerator  # noqa: E402
from sagim_tf.models.sagim import SaGIM  # noqa: E402
from sagim_tf.workflows import benchmarking as bm  # noqa: E402


def build_model(args, jit):
    model = SaGIM(
        generator=SaGIMGenerator(base_filters=args.base_filters),
        discriminator=PatchDiscriminator(),
        # XLA needs the estimator's XLA form (itti-koch: no antialiased resize).
        estimator=build_estimator(args.estimator, jit_compile=jit),
        content_features=ContentFeatures(weights=None),
        validate_inputs=False,
    )
    model.compile(jit_compile=jit)
    return model


def sam_for_input(args, tmp):
    if args.data:
        return args.data
    coco = os.path.join(tmp, "coco")
    generate_synthetic_coco(coco, 120, seed=0)
    out = os.path.join(tmp, "sam")
    build_sam(
        os.path.join(coco, "images"),
        [os.path.join(coco, "instances.json")],
        out,
        args.estimator,
        config=BuildConfig(size=tuple(args.size), train=40, test=4, seed=0),
        progress=False,
        log=lambda m: None,
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("W", "H"))
    parser.add_argument("--base-filters", type=int, default=32, help="G's width (default 32)")
    parser.add_argument("--estimator", default="itti-koch")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per setting")
    parser.add_argument("--data", help="an existing SAM folder for the input benchmark")
    parser.add_argument("--skip-xla", action="store_true")
    args = parser.parse_args(argv)

    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU")),
        },
        "batch": args.batch,
        "size": list(args.size),
        "base_filters": args.base_filters,
        "estimator": args.estimator,
    }
    result["matmul_gflops"] = round(bm.matmul_gflops(), 1)
    image, guidance = bm.random_batch(args.batch, args.size)

    model = build_model(args, jit=False)
    fwd = {
        "G": bm.forward_seconds(lambda a, b: model.generator([a, b]), image, guidance),
        "E": bm.forward_seconds(model.estimator, image),
        "VGG": bm.forward_seconds(model.content_features, image),
        "D": bm.forward_seconds(model.discriminator, image),
    }
    result["forward_ms"] = {k: round(v * 1000, 1) for k, v in fwd.items()}
    contained = 2 * fwd["G"] + 2 * fwd["E"] + 3 * fwd["VGG"] + 3 * fwd["D"]
    step = {"xla_off": bm.train_step_seconds(model, image, guidance, args.steps)}
    if not args.skip_xla:
        step["xla_on"] = bm.train_step_seconds(
            build_model(args, jit=True), image, guidance, args.steps
        )
    result["train_step_ms"] = {k: round(v * 1000, 1) for k, v in step.items()}
    result["train_images_per_s"] = {k: round(args.batch / v, 3) for k, v in step.items()}
    result["step_over_contained_forwards"] = round(step["xla_off"] / contained, 2)
    if "xla_on" in step:
        result["xla_speedup"] = round(step["xla_off"] / step["xla_on"], 2)

    with tempfile.TemporaryDirectory() as tmp:
        data = sam_for_input(args, tmp)
        result["input_images_per_s"] = round(
            bm.input_images_per_second(data, args.batch, args.size), 1
        )
    result["input_over_train"] = round(
        result["input_images_per_s"] / result["train_images_per_s"]["xla_off"], 1
    )
    result["train_images_per_s_per_matmul_gflops"] = round(
        result["train_images_per_s"]["xla_off"] / result["matmul_gflops"], 6
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
