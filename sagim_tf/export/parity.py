"""Parity of exported files with the Keras G they came from (``sagim export`` checks it).

Each file is run on one random 2x40x56 batch and compared to Keras G:

==================== ================================== ====================================
key                  measure                            threshold (what it allows for)
==================== ================================== ====================================
savedmodel           max |diff| to Keras G's edit       1e-5: float32 op reordering in graph
savedmodel:fields    max |diff| to Keras G's raw fields 1e-5: the same
savedmodel:edit_     max |diff| to ``edit_image`` with  1e-4: E, the guidance rule (OpenCV's
masks                the same masks (NumPy rule, E, G)  blur against TensorFlow's) and G, all
                                                        float32, summed in other orders
tflite               max |diff| to Keras                1e-4: TFLite's own float32 kernels
tflite-fp16          max |diff| to Keras                1e-2: weights rounded to float16
tflite-int8          PSNR against the float32 file      >= 30 dB: int8 weight quantisation
<fmt>:fields         the fields file's fields applied   the same as <fmt>: what a device
                     with ``apply_fields``, against G's shows is the edit, so the fields are
                     edit (int8: against the fp32       judged by it
                     fields file's edit)
==================== ================================== ====================================

Only the dynamic-size TFLite files are checked (the fixed-size ones hold the same graph
at one static shape). ``savedmodel:fields`` and ``<fmt>:fields`` exist for an
operator-head G; ``savedmodel:edit_masks`` when the SavedModel has ``edit_masks`` and the
estimator it was exported with is passed.
"""

from __future__ import annotations

import numpy as np

from sagim_tf.export.savedmodel import load_savedmodel
from sagim_tf.export.signatures import (
    DEFAULT_SIGNATURE,
    EDIT_MASKS_SIGNATURE,
    FIELDS_KEY,
    FIELDS_SIGNATURE,
    OUTPUT_KEY,
)
from sagim_tf.export.tflite import FIELDS_SUFFIX, TFLITE_FORMATS, TFLiteRunner
from sagim_tf.inference.editor import Editor, edit_image
from sagim_tf.models.generate import apply_fields, has_operator_head
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.errors import ExportError

#: key -> largest max |diff| a fresh export may show (see the module docstring).
TOLERANCES = {
    "savedmodel": 1e-5,
    "savedmodel:fields": 1e-5,
    "savedmodel:edit_masks": 1e-4,
    "tflite": 1e-4,
    "tflite-fp16": 1e-2,
    "tflite:fields": 1e-4,
    "tflite-fp16:fields": 1e-2,
}
#: Smallest PSNR (dB) of an int8 file against the float32 one.
MIN_INT8_PSNR = 30.0
PARITY_SHAPE = (2, 40, 56)  # batch, height, width of the random check batch
#: The strength the ``edit_masks`` check asks for (not 1, so that the scaling is checked).
PARITY_STRENGTH = 0.7


def psnr(x, reference) -> float:
    """PSNR in dB of ``x`` against ``reference``, both in [0, 1]; inf when they are equal."""
    diff = np.asarray(x, np.float64) - np.asarray(reference, np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def parity_masks(batch: int, height: int, width: int):
    """The check's ``(emphasize, deemphasize)``: the upper-left and lower-right quarters."""
    emphasize = np.zeros((batch, height, width, 1), np.float32)
    deemphasize = np.zeros_like(emphasize)
    emphasize[:, : height // 2, : width // 2] = 1.0
    deemphasize[:, height // 2 :, width // 2 :] = 1.0
    return emphasize, deemphasize


def edit_masks_reference(generator, estimator, image, emphasize, deemphasize, strength):
    """What ``edit_masks`` should return, by the NumPy path: ``edit_image`` per image, at
    the image's own size.

    Masks without a pixel above 0.5 are left out (``edit_image`` takes them as no region).
    """
    editor = Editor(generator, estimator)
    strength = np.broadcast_to(np.asarray(strength, np.float32).reshape(-1), (len(image),))
    out = []
    for i in range(len(image)):
        emph = [emphasize[i]] if (emphasize[i] > 0.5).any() else []
        deem = [deemphasize[i]] if (deemphasize[i] > 0.5).any() else []
        result = edit_image(  # max_side: at the image's own size, as the signature runs
            editor,
            image[i],
            emphasize=emph,
            deemphasize=deem,
            strength=float(strength[i]),
            max_side=max(image.shape[1:3]),
        )
        out.append(result["edited"])
    return np.stack(out)


def _apply_each(image, fields):
    return np.stack([apply_fields(image[i], fields[i]) for i in range(len(image))])


def check_parity(generator, written: dict, seed: int = 0, estimator=None) -> dict[str, float]:
    """Compare each written file to Keras G on one random batch; raise if one is off.

    Args:
        generator: keras.Model. The G the files were exported from.
        written: dict of str to list of str. ``{format: [paths]}`` as
            :func:`~sagim_tf.export.tflite.export_tflite` returns it (fields files under
            ``<format>:fields``), plus ``"savedmodel": [version_path]``.
        seed: int. Seed of the random batch. Defaults to `0`.
        estimator: keras.Model or None. The E the SavedModel's ``edit_masks`` was exported
            with; None skips that check. Defaults to `None`.

    Returns:
        ``{key: measure}`` (keys of the module docstring's table): max |diff| for float
        formats, PSNR in dB for the int8 ones.

    Raises:
        ExportError: a file is beyond its threshold (callers say whether the files were
            kept: ``sagim export`` publishes no SavedModel version that fails).
    """
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, (*PARITY_SHAPE, 3)).astype(np.float32)
    guidance = rng.uniform(0, 1, (*PARITY_SHAPE, 1)).astype(np.float32)
    reference = np.asarray(generator([image, guidance], training=False))
    operators = has_operator_head(generator)
    report = {}
    if "savedmodel" in written:
        loaded = load_savedmodel(written["savedmodel"][0])
        signature = loaded.signatures[DEFAULT_SIGNATURE]
        out = signature(image=image, guidance=guidance)[OUTPUT_KEY].numpy()
        report["savedmodel"] = float(np.abs(out - reference).max())
        if operators and FIELDS_SIGNATURE in loaded.signatures:
            expected = np.asarray(field_model(generator)([image, guidance], training=False))
            got = loaded.signatures[FIELDS_SIGNATURE](image=image, guidance=guidance)
            report["savedmodel:fields"] = float(np.abs(got[FIELDS_KEY].numpy() - expected).max())
        if estimator is not None and EDIT_MASKS_SIGNATURE in loaded.signatures:
            emphasize, deemphasize = parity_masks(*PARITY_SHAPE)
            strength = np.float32(PARITY_STRENGTH)
            got = loaded.signatures[EDIT_MASKS_SIGNATURE](
                image=image, emphasize=emphasize, deemphasize=deemphasize, strength=strength
            )[OUTPUT_KEY].numpy()
            expected = edit_masks_reference(
                generator, estimator, image, emphasize, deemphasize, strength
            )
            report["savedmodel:edit_masks"] = float(np.abs(got - expected).max())
    for suffix in ("", FIELDS_SUFFIX):
        fp32 = None
        for fmt in TFLITE_FORMATS:
            for path in written.get(fmt + suffix, []):
                runner = TFLiteRunner(path)
                if not runner.dynamic:
                    continue
                if suffix:
                    out = _apply_each(image, runner.fields(image, guidance))
                else:
                    out = runner.edit(image, guidance)
                if fmt == "tflite":
                    fp32 = out
                if fmt == "tflite-int8":
                    report[fmt + suffix] = psnr(out, fp32 if fp32 is not None else reference)
                else:
                    report[fmt + suffix] = float(np.abs(out - reference).max())
    failures = [
        f"{key} max |diff| {report[key]:.3g} > {tol:g}"
        for key, tol in TOLERANCES.items()
        if key in report and report[key] > tol
    ]
    for key in ("tflite-int8", "tflite-int8" + FIELDS_SUFFIX):
        if key in report and report[key] < MIN_INT8_PSNR:
            failures.append(f"{key} PSNR {report[key]:.1f} dB < {MIN_INT8_PSNR:g} dB")
    if failures:
        batch = "x".join(str(d) for d in PARITY_SHAPE)
        raise ExportError(
            "the exported files differ from the Keras model beyond the parity "
            f"thresholds on a random {batch} batch: "
            + "; ".join(failures)
            + " (export only the formats that pass, or skip the check with --no-check and "
            "use the files knowingly)"
        )
    return report
