"""``sagim export``: write G as a TF Serving SavedModel and as TFLite files."""

from __future__ import annotations

NAME = "export"
HELP = "Export G as a SavedModel for TF Serving and as TFLite files (builtin ops only)."

ALL_FORMATS = ("savedmodel", "tflite", "tflite-fp16", "tflite-int8")
# Parity a fresh export must show on a small random input (see sagim_tf.export.tflite).
TOLERANCES = {"savedmodel": 1e-5, "tflite": 1e-4, "tflite-fp16": 1e-2}
MIN_INT8_PSNR = 30.0


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="PATH",
                        help=".keras file holding a trained SaGIM or a bare G")
    parser.add_argument("--out", default="export", metavar="DIR", help="export root (default: export)")
    parser.add_argument("--name", default="sagim", help="model name for TF Serving (default: sagim)")
    parser.add_argument("--version", type=int, default=None, metavar="N",
                        help="SavedModel version (default: one more than the highest present)")
    parser.add_argument("--formats", default=",".join(ALL_FORMATS),
                        help=f"comma-separated subset of {','.join(ALL_FORMATS)} (default: all)")
    parser.add_argument("--tflite-size", type=int, nargs=2, default=(256, 192), metavar=("W", "H"),
                        help="input size of the fixed-size TFLite files (default: 256 192)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing SavedModel version directory")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the parity check of each written file against Keras")


def _parse_formats(text):
    from sagim_tf.utils.errors import ConfigError

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"--formats: unknown {unknown or text!r}; choose from {','.join(ALL_FORMATS)}")
    return list(dict.fromkeys(formats))


def _size_text(path):
    import os

    if os.path.isdir(path):
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    else:
        total = os.path.getsize(path)
    return f"{total / 1e6:.2f} MB"


def check_parity(generator, written: dict, seed: int = 0) -> dict:
    """Compare each written file to Keras G on one random 2x40x56 batch; raise if off."""
    import numpy as np

    from sagim_tf.export import ExportError, TFLiteRunner, load_savedmodel

    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, (2, 40, 56, 3)).astype(np.float32)
    guidance = rng.uniform(0, 1, (2, 40, 56, 1)).astype(np.float32)
    reference = np.asarray(generator([image, guidance], training=False))
    report = {}
    if "savedmodel" in written:
        sig = load_savedmodel(written["savedmodel"][0]).signatures["serving_default"]
        out = sig(image=image, guidance=guidance)["edited"].numpy()
        report["savedmodel"] = float(np.abs(out - reference).max())
    fp32 = None
    for fmt in ("tflite", "tflite-fp16", "tflite-int8"):
        for path in written.get(fmt, []):
            runner = TFLiteRunner(path)
            if runner.dynamic:
                out = runner.edit(image, guidance)
                if fmt == "tflite":
                    fp32 = out
                report[fmt] = (
                    float(np.abs(out - reference).max()) if fmt != "tflite-int8"
                    else _psnr(out, fp32 if fp32 is not None else reference)
                )
    failures = [f"{fmt} max |diff| {report[fmt]:.3g} > {tol:g}"
                for fmt, tol in TOLERANCES.items() if fmt in report and report[fmt] > tol]
    if "tflite-int8" in report and report["tflite-int8"] < MIN_INT8_PSNR:
        failures.append(f"tflite-int8 PSNR {report['tflite-int8']:.1f} dB < {MIN_INT8_PSNR:g} dB")
    if failures:
        raise ExportError(
            "the files were written but differ from the Keras model beyond the parity "
            "thresholds on a random 2x40x56 batch: " + "; ".join(failures)
            + " (use them knowingly, or export only the formats that pass)"
        )
    return report


def _psnr(x, ref):
    import numpy as np

    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(ref, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def run(args) -> int:
    formats = _parse_formats(args.formats)
    from sagim_tf.export import export_savedmodel, export_tflite, load_generator, write_models_config

    generator = load_generator(args.model)
    written = {}
    if "savedmodel" in formats:
        path = export_savedmodel(generator, args.out, name=args.name, version=args.version,
                                 overwrite=args.overwrite)
        written["savedmodel"] = [path]
        config = write_models_config(args.out, args.name)
        print(f"savedmodel   {path}  ({_size_text(path)}); TF Serving config: {config}")
    tflite_formats = [f for f in formats if f != "savedmodel"]
    if tflite_formats:
        files = export_tflite(generator, args.out, name=args.name, formats=tflite_formats,
                              fixed_size=tuple(args.tflite_size))
        for fmt, paths in files.items():
            for path in paths:
                print(f"{fmt:<12} {path}  ({_size_text(path)})")
        written.update(files)
    if not args.no_check:
        report = check_parity(generator, written)
        parts = [f"{k} {'PSNR %.1f dB' % v if k == 'tflite-int8' else 'max|diff| %.2g' % v}"
                 for k, v in report.items()]
        print("parity with Keras: " + ", ".join(parts))
    return 0
