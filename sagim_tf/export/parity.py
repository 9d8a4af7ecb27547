"""Parity of exported files with the Keras G they came from (``sagim export`` checks it).

Each file is run on one random 2x40x56 batch and compared to Keras G:

============ ======================================= =====================================
format       measure                                 threshold (what it allows for)
============ ======================================= =====================================
savedmodel   max |diff| to Keras                     1e-5: float32 op reordering in graph
tflite       max |diff| to Keras                     1e-4: TFLite's own float32 kernels
tflite-fp16  max |diff| to Keras                     1e-2: weights rounded to float16
tflite-int8  PSNR against the float32 TFLite file    >= 30 dB: int8 weight quantisation
============ ======================================= =====================================

Only the dynamic-size TFLite files are checked (the fixed-size ones hold the same graph
at one static shape).
"""

from __future__ import annotations

import numpy as np

from sagim_tf.export.savedmodel import load_savedmodel
from sagim_tf.export.signatures import DEFAULT_SIGNATURE, OUTPUT_KEY
from sagim_tf.export.tflite import TFLiteRunner
from sagim_tf.utils.errors import ExportError

#: format -> largest max |diff| to Keras G a fresh export may show.
TOLERANCES = {"savedmodel": 1e-5, "tflite": 1e-4, "tflite-fp16": 1e-2}
#: Smallest PSNR (dB) of the int8 file against the float32 one.
MIN_INT8_PSNR = 30.0
PARITY_SHAPE = (2, 40, 56)  # batch, height, width of the random check batch


def psnr(x, reference) -> float:
    """PSNR in dB of ``x`` against ``reference``, both in [0, 1]; inf when they are equal."""
    diff = np.asarray(x, np.float64) - np.asarray(reference, np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def check_parity(generator, written: dict, seed: int = 0) -> dict[str, float]:
    """Compare each written file to Keras G on one random batch; raise if one is off.

    Args:
        generator: keras.Model. The G the files were exported from.
        written: dict of str to list of str. ``{format: [paths]}`` as
            :func:`~sagim_tf.export.tflite.export_tflite` returns it, plus
            ``"savedmodel": [version_path]``.
        seed: int. Seed of the random batch. Defaults to `0`.

    Returns:
        ``{format: measure}``: max |diff| for float formats, PSNR in dB for ``tflite-int8``.

    Raises:
        ExportError: a file is beyond its threshold (the files stay written).
    """
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, (*PARITY_SHAPE, 3)).astype(np.float32)
    guidance = rng.uniform(0, 1, (*PARITY_SHAPE, 1)).astype(np.float32)
    reference = np.asarray(generator([image, guidance], training=False))
    report = {}
    if "savedmodel" in written:
        signature = load_savedmodel(written["savedmodel"][0]).signatures[DEFAULT_SIGNATURE]
        out = signature(image=image, guidance=guidance)[OUTPUT_KEY].numpy()
        report["savedmodel"] = float(np.abs(out - reference).max())
    fp32 = None
    for fmt in ("tflite", "tflite-fp16", "tflite-int8"):
        for path in written.get(fmt, []):
            runner = TFLiteRunner(path)
            if not runner.dynamic:
                continue
            out = runner.edit(image, guidance)
            if fmt == "tflite":
                fp32 = out
            if fmt == "tflite-int8":
                report[fmt] = psnr(out, fp32 if fp32 is not None else reference)
            else:
                report[fmt] = float(np.abs(out - reference).max())
    failures = [
        f"{fmt} max |diff| {report[fmt]:.3g} > {tol:g}"
        for fmt, tol in TOLERANCES.items()
        if fmt in report and report[fmt] > tol
    ]
    if "tflite-int8" in report and report["tflite-int8"] < MIN_INT8_PSNR:
        failures.append(f"tflite-int8 PSNR {report['tflite-int8']:.1f} dB < {MIN_INT8_PSNR:g} dB")
    if failures:
        batch = "x".join(str(d) for d in PARITY_SHAPE)
        raise ExportError(
            "the files were written but differ from the Keras model beyond the parity "
            f"thresholds on a random {batch} batch: "
            + "; ".join(failures)
            + " (use them knowingly, or export only the formats that pass)"
        )
    return report
