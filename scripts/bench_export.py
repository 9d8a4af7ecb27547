"""Latency of G through Keras, the SavedModel and each TFLite variant, and each file's size.

Prints one JSON object. Without ``--model`` it builds the default ``SaGIMGenerator()`` with
a fixed seed (latency does not depend on the weights' values). Example::

    python scripts/bench_export.py                      # 256x192 and 1024x768
    python scripts/bench_export.py --model runs/demo/run/sagim.keras --repeats 5

The targets: TFLite fp32 no slower than the SavedModel, and dynamic-range int8 at most
0.6x the fp32 TFLite time; the ``ratios`` field reports both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from functools import partial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sagim_tf.export import TFLiteRunner, export_savedmodel, export_tflite  # noqa: E402
from sagim_tf.export.signatures import DEFAULT_SIGNATURE, OUTPUT_KEY  # noqa: E402
from sagim_tf.models.generator import SaGIMGenerator  # noqa: E402
from sagim_tf.models.loading import load_generator  # noqa: E402
from sagim_tf.utils.io import write_text  # noqa: E402
from sagim_tf.workflows import benchmarking as bm  # noqa: E402


def _size(text):
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _serve(signature, image, guidance):
    return signature(image=image, guidance=guidance)[OUTPUT_KEY].numpy()


def _time(fn, warmup, repeats):
    return bm.summary_ms(bm.sample_seconds(fn, repeats, warmup))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=".keras file (default: untrained default G)")
    parser.add_argument("--sizes", default="256x192,1024x768", help="comma-separated WxH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="TFLite interpreter threads (default: all cores)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    sizes = [_size(s) for s in args.sizes.split(",") if s]

    if args.model:
        generator = load_generator(args.model)
        model_desc = os.path.abspath(args.model)
    else:
        keras.utils.set_random_seed(args.seed)
        generator = SaGIMGenerator()
        model_desc = f"SaGIMGenerator() default config, untrained, seed {args.seed}"
    generator([np.zeros((1, 32, 32, 3), np.float32), np.zeros((1, 32, 32, 1), np.float32)])

    with tempfile.TemporaryDirectory(prefix="sagim-bench-") as tmp:
        t0 = time.perf_counter()
        sm_path = export_savedmodel(generator, tmp, name="sagim")
        export_s = {"savedmodel": round(time.perf_counter() - t0, 1)}
        t0 = time.perf_counter()
        files = export_tflite(
            generator, tmp, formats=("tflite", "tflite-fp16", "tflite-int8"), fixed_size=(256, 192)
        )
        export_s["tflite_all_six"] = round(time.perf_counter() - t0, 1)
        file_bytes = {"savedmodel": _dir_bytes(sm_path)}
        for paths in files.values():
            for path in paths:
                file_bytes[os.path.basename(path)] = os.path.getsize(path)

        loaded = tf.saved_model.load(sm_path)
        serving = loaded.signatures[DEFAULT_SIGNATURE]
        runners = {
            os.path.basename(p): TFLiteRunner(p, num_threads=args.threads)
            for paths in files.values()
            for p in paths
        }
        latency = {}
        rng = np.random.default_rng(args.seed)
        for w, h in sizes:
            image = rng.uniform(0, 1, (1, h, w, 3)).astype(np.float32)
            guidance = rng.uniform(0, 1, (1, h, w, 1)).astype(np.float32)
            image_t, guidance_t = tf.constant(image), tf.constant(guidance)
            calls = {
                "keras_predict_on_batch": partial(generator.predict_on_batch, [image, guidance]),
                "savedmodel_serving_default": partial(_serve, serving, image_t, guidance_t),
            }
            for name, runner in runners.items():
                if runner.dynamic or runner.input_size == (w, h):
                    calls[name] = partial(runner._run, image, guidance)
            row = {name: _time(fn, args.warmup, args.repeats) for name, fn in calls.items()}
            latency[f"{w}x{h}"] = row

    ratios = {}
    for size, row in latency.items():
        sm = row["savedmodel_serving_default"]["median_ms"]
        fp32 = row["sagim_fp32.tflite"]["median_ms"]
        ratios[size] = {
            "tflite_fp32_over_savedmodel": round(fp32 / sm, 3),
            "tflite_int8_over_tflite_fp32": round(row["sagim_int8.tflite"]["median_ms"] / fp32, 3),
            "tflite_fp16_over_tflite_fp32": round(row["sagim_fp16.tflite"]["median_ms"] / fp32, 3),
        }
    report = {
        "model": model_desc,
        "parameters": int(generator.count_params()),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "batch": 1,
        "repeats": args.repeats,
        "tflite_threads": args.threads,
        "export_seconds": export_s,
        "latency": latency,
        "ratios": ratios,
        "file_bytes": file_bytes,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
