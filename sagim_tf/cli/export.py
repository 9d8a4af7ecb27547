"""``sagim export``: write G as a TF Serving SavedModel and as TFLite files."""

from __future__ import annotations

import os

from sagim_tf.utils.errors import ConfigError, SagimError

NAME = "export"
HELP = "Export G as a SavedModel for TF Serving and as TFLite files (builtin ops only)."

# Signatures: serving_default and edit_uint8 always; fields for an operator-head G (and a
# <name>_fields_<fmt>.tflite per TFLite format); edit_masks when an estimator E that can be
# traced comes with the model (a SaGIM file's own E, or --estimator SPEC).

# The same names and size as sagim_tf.export.tflite's TFLITE_FORMATS and DEFAULT_FIXED_SIZE
# (tests/test_export_cli.py checks), written out so that `--help` does not import TensorFlow.
ALL_FORMATS = ("savedmodel", "tflite", "tflite-fp16", "tflite-int8")
DEFAULT_FIXED_SIZE = (256, 192)


def add_arguments(parser):
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help=".keras file holding a trained SaGIM or a bare G",
    )
    parser.add_argument(
        "--out", default="export", metavar="DIR", help="export root (default: export)"
    )
    parser.add_argument(
        "--name", default="sagim", help="model name for TF Serving (default: sagim)"
    )
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        metavar="N",
        help="SavedModel version (default: one more than the highest present)",
    )
    parser.add_argument(
        "--formats",
        default=",".join(ALL_FORMATS),
        help=f"comma-separated subset of {','.join(ALL_FORMATS)} (default: all)",
    )
    parser.add_argument(
        "--tflite-size",
        type=int,
        nargs=2,
        default=DEFAULT_FIXED_SIZE,
        metavar=("W", "H"),
        help="input size of the fixed-size TFLite files (default: {} {})".format(
            *DEFAULT_FIXED_SIZE
        ),
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing SavedModel version directory",
    )
    parser.add_argument(
        "--estimator",
        default=None,
        metavar="SPEC",
        help="estimator E traced into the edit_masks signature (itti-koch, salgan:PATH, "
        "keras:PATH), or 'none' to leave edit_masks out (default: a SaGIM file's own E; a "
        "bare G file gets no edit_masks)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the parity check of each written file against Keras",
    )


def _parse_formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"--formats: unknown {unknown or text!r}; choose from {','.join(ALL_FORMATS)}"
        )
    return list(dict.fromkeys(formats))


def _size_text(path):
    if os.path.isdir(path):
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    else:
        total = os.path.getsize(path)
    return f"{total / 1e6:.2f} MB"


def run(args) -> int:
    formats = _parse_formats(args.formats)
    # lazy: export imports TensorFlow; `sagim export --help` should not wait for it
    from sagim_tf.export.loading import load_export_source
    from sagim_tf.export.parity import check_parity
    from sagim_tf.export.savedmodel import (
        export_savedmodel,
        model_signatures,
        write_models_config,
    )
    from sagim_tf.export.tflite import export_tflite

    source = load_export_source(args.model, args.estimator)
    generator, estimator = source.generator, source.estimator
    report = {}

    def parity(written):
        try:
            report.update(check_parity(generator, written, estimator=estimator))
        except ModuleNotFoundError as exc:  # the TFLite check runs on the `tflite` extra
            raise SagimError(f"{exc}; or skip the check with --no-check") from exc

    if "savedmodel" in formats:
        # the version is checked under its hidden temporary name and published only if the
        # check passes: a failed or killed export leaves no servable version
        path = export_savedmodel(
            generator,
            args.out,
            name=args.name,
            version=args.version,
            overwrite=args.overwrite,
            estimator=estimator,
            check=None if args.no_check else (lambda tmp: parity({"savedmodel": [tmp]})),
        )
        config = write_models_config(args.out, args.name)
        print(f"savedmodel   {path}  ({_size_text(path)}); TF Serving config: {config}")
        print(f"signatures   {', '.join(model_signatures(generator, estimator))}")
        if source.note:
            print(f"note: {source.note}")
    tflite_formats = [f for f in formats if f != "savedmodel"]
    if tflite_formats:
        files = export_tflite(
            generator,
            args.out,
            name=args.name,
            formats=tflite_formats,
            fixed_size=tuple(args.tflite_size),
            # checked under hidden names and published only if the check passes: a failed
            # check leaves an earlier export's files as they were
            check=None if args.no_check else parity,
        )
        for fmt, paths in files.items():
            for path in paths:
                print(f"{fmt:<12} {path}  ({_size_text(path)})")
    if report:
        parts = [
            f"{key} PSNR {value:.1f} dB"
            if key.startswith("tflite-int8")
            else f"{key} max|diff| {value:.2g}"
            for key, value in report.items()
        ]
        print("parity with Keras: " + ", ".join(parts))
    return 0
