"""G as TFLite files (builtin ops only) and a runner on ``ai_edge_litert``.

Formats (``sagim export --formats``; the parity thresholds are checked by
:mod:`sagim_tf.export.parity`):

=============  ==========================================  ==============================
format         weights / arithmetic                        parity with Keras G
=============  ==========================================  ==============================
tflite         float32                                     max abs diff <= 1e-4
tflite-fp16    float16 weights, dequantised to float32     max abs diff <= 1e-2
tflite-int8    dynamic-range int8 weights (activations in  PSNR >= 30 dB against the
               float, int8 kernels where they exist)       float32 file
=============  ==========================================  ==============================

Each format is written twice: a dynamic file that takes any B, H and W (the signature
runner resizes its inputs on each call), and a fixed-size file for mobile (batch 1 and
``--tflite-size W H``, default 256x192), whose shapes are all static so that delegates
(GPU, NNAPI, Core ML) can take the whole graph.

The files carry one signature, ``serving_default`` of :mod:`sagim_tf.export.signatures`
(inputs ``image`` and ``guidance``, output ``edited``, float32), without the in-graph
checks (TFLite has no builtin ``Assert``); :class:`TFLiteRunner` checks inputs in NumPy.

For an operator-head G each format is also written as a *fields* file,
``<name>_fields_<fp32|fp16|int8>[_<W>x<H>].tflite``, carrying the ``fields`` signature
(the same inputs, output ``fields`` float32 (B, H, W, 7), G's raw operator fields at the
input's resolution): a phone or a browser runs it on the working-size copy of a photo and
applies the fields to the full-resolution photo itself (settings ``range * tanh(field)``,
:mod:`sagim_tf.layers.photo_operators`; :func:`sagim_tf.models.generate.apply_fields` is
the reference). :meth:`TFLiteRunner.fields` runs such a file. The fixed-size fields file
at the G's working size (``--tflite-size``) is the one a device wants.

Conversion goes through a SavedModel (``TFLiteConverter.from_keras_model`` fails on
Keras 3) with ``OpsSet.TFLITE_BUILTINS`` only: Flex/Select ops do not run in the pip
interpreters, so a model that needs one is refused with an
:class:`~sagim_tf.utils.errors.ExportError` naming the op.

One detail of the dynamic file: with unknown H and W, TensorFlow's shape inference loses
the channel count after G's mirror padding and nearest upsampling (their output shapes
are computed at run time), and the converter cannot lower a ``Conv2D`` whose input
channels are unknown to the builtin ``CONV_2D``. The export therefore converts a clone of
G whose convolutions first restate their input's channel count with a ``RESHAPE`` (a
no-op on the data) -- same weights, same arithmetic.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.export.savedmodel import build_archive
from sagim_tf.export.signatures import (
    DEFAULT_SIGNATURE,
    FIELDS_KEY,
    FIELDS_SIGNATURE,
    GUIDANCE_KEY,
    IMAGE_KEY,
    OUTPUT_KEY,
)
from sagim_tf.models.generate import has_operator_head
from sagim_tf.utils.checks import check_image, check_map, parse_size
from sagim_tf.utils.errors import ConfigError, ExportError, InputError, SagimError
from sagim_tf.utils.extras import missing_extra
from sagim_tf.utils.io import publish_file, remove_stale_staging, staging_prefix

log = logging.getLogger(__name__)

#: format name -> (weight type, file tag)
TFLITE_FORMATS = {
    "tflite": ("float32", "fp32"),
    "tflite-fp16": ("float16", "fp16"),
    "tflite-int8": ("int8", "int8"),
}
DEFAULT_FIXED_SIZE = (256, 192)  # width, height: SalGAN's input size
SIGNATURE = DEFAULT_SIGNATURE  # the one signature a G file carries
#: The suffix of a format's key for its fields files in :func:`export_tflite`'s answer.
FIELDS_SUFFIX = ":fields"


class _ChannelPinnedConv2D(keras.layers.Conv2D):
    """Conv2D that restates its input's channel count (a RESHAPE) before convolving."""

    def call(self, inputs):
        shape = tf.shape(inputs)
        channels = int(self.kernel.shape[-2])
        inputs = tf.reshape(inputs, tf.stack([shape[0], shape[1], shape[2], channels]))
        return super().call(inputs)


def _pin_channels(layer):
    if type(layer) is keras.layers.Conv2D:
        return _ChannelPinnedConv2D.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())


def tflite_ready_clone(generator) -> keras.Model:
    """A functional clone of G (same weights) whose convolutions keep static channels.

    A model that cannot be cloned (not functional) is returned as it is.
    """
    try:
        clone = keras.models.clone_model(generator, clone_function=_pin_channels)
        clone.set_weights(generator.get_weights())
    except Exception as exc:  # not a functional model: convert it as it is
        log.debug("converting G without channel pinning (clone failed: %s)", exc)
        return generator
    return clone


def _non_builtin_ops(message: str) -> list[str]:
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"(?:TF Select|Custom) ops: ([^\n]+)", message):
        ops.update(op.strip() for op in line.split(",") if op.strip())
    return sorted(ops)


def convert_saved_model(
    saved_model_dir, weights: str = "float32", signature: str = SIGNATURE
) -> bytes:
    """Convert one signature of a SavedModel to TFLite with builtin ops only.

    Args:
        saved_model_dir: str or path. The SavedModel directory.
        weights: str. ``"float32"``, ``"float16"`` or ``"int8"`` (dynamic range).
            Defaults to `"float32"`.
        signature: str. The signature to convert. Defaults to `"serving_default"`.

    Raises:
        ConfigError: an unknown ``weights``.
        ExportError: the conversion failed; a missing builtin kernel is named.
    """
    if weights not in ("float32", "float16", "int8"):
        raise ConfigError(f"weights must be float32, float16 or int8, got {weights!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if weights != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: dynamic range
    if weights == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as exc:
        message = str(exc)
        ops = _non_builtin_ops(message)
        if ops:
            raise ExportError(
                f"TFLite conversion failed: op(s) {', '.join(ops)} have no TFLite builtin "
                "kernel. This export uses builtin ops only (Flex/Select ops do not run in the "
                "pip interpreters or on most devices); replace the layer that uses them."
            ) from exc
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        raise ExportError(f"TFLite conversion failed: {first}") from exc


def _write_tflite_savedmodel(generator, directory, input_size=None, signatures=(SIGNATURE,)):
    """The intermediate SavedModel with the named signatures (``fields`` for an
    operator-head G, maybe its functional clone)."""
    width, height = input_size if input_size is not None else (None, None)
    batch = 1 if input_size is not None else None
    archive = build_archive(
        generator,
        validate=False,
        batch=batch,
        height=height,
        width=width,
        signatures=tuple(signatures),
        operator_head=True if FIELDS_SIGNATURE in signatures else None,
    )
    archive.write_out(directory, verbose=False)


def _check_size(input_size):
    return parse_size(input_size, "TFLite size", minimum=1)


def convert_to_tflite(
    generator, weights: str = "float32", input_size=None, fields: bool = False
) -> bytes:
    """Return G (or, with ``fields``, its field model) as a TFLite flatbuffer.

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited``.
        weights: str. ``"float32"``, ``"float16"`` or ``"int8"`` (dynamic range).
            Defaults to `"float32"`.
        input_size: tuple of two ints or None. ``(width, height)`` for a fixed-size,
            batch-1 model; None takes any size. Defaults to `None`.
        fields: bool. Convert the ``fields`` signature of an operator-head G instead of
            the edit. Defaults to `False`.

    Raises:
        ConfigError: a bad argument, or ``fields`` for a G without the operator head.
    """
    if weights not in ("float32", "float16", "int8"):
        raise ConfigError(f"weights must be float32, float16 or int8, got {weights!r}")
    if fields and not has_operator_head(generator):
        raise ConfigError("fields: only an operator-head G (head='operators') has fields")
    input_size = _check_size(input_size)
    tmp = tempfile.mkdtemp(prefix="sagim-tflite-")
    try:
        signature = FIELDS_SIGNATURE if fields else SIGNATURE
        _write_tflite_savedmodel(tflite_ready_clone(generator), tmp, input_size, (signature,))
        return convert_saved_model(tmp, weights, signature)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tflite_filename(name: str, fmt: str, input_size=None, fields: bool = False) -> str:
    """``<name>[_fields]_<fp32|fp16|int8>[_<W>x<H>].tflite``."""
    tag = TFLITE_FORMATS[fmt][1]
    size = f"_{input_size[0]}x{input_size[1]}" if input_size is not None else ""
    kind = "_fields" if fields else ""
    return f"{name}{kind}_{tag}{size}.tflite"


def export_tflite(
    generator,
    out_dir,
    name: str = "sagim",
    formats=("tflite",),
    fixed_size=DEFAULT_FIXED_SIZE,
    check=None,
) -> dict[str, list[str]]:
    """Write each TFLite format, dynamic and (unless ``fixed_size`` is None) fixed-size.

    Files go to ``<out_dir>/tflite/<name>_<fp32|fp16|int8>[_<W>x<H>].tflite``; for an
    operator-head G also the fields files
    ``<name>_fields_<fp32|fp16|int8>[_<W>x<H>].tflite``. The two intermediate SavedModels
    are built once and shared by the formats.

    Every file is first written under a hidden temporary name beside its final one
    (``.tmp-p<pid>@<host>-*.tflite``); ``check``, when given, sees them all there; only
    if it passes is each one given the usual mode (0644 under umask 022), synced to disk
    and renamed onto its final name (:func:`~sagim_tf.utils.io.publish_file`). A failed
    check or conversion publishes nothing and leaves the files of an earlier export as
    they were; what a killed export leaves is removed by the next one.

    Args:
        generator: keras.Model. G, ``[image, guidance] -> edited``.
        out_dir: str or path. The export root, e.g. ``export``.
        name: str. The file name prefix. Defaults to `"sagim"`.
        formats: sequence of str. Keys of :data:`TFLITE_FORMATS`. Defaults to
            `("tflite",)`.
        fixed_size: tuple of two ints or None. ``(width, height)`` of the fixed-size files;
            None writes the dynamic files only. Defaults to `(256, 192)`.
        check: callable or None. ``check(staged)`` on ``{format: [temporary paths]}``
            (the shape of the return value) before anything is published; ``sagim
            export``'s parity check (:func:`sagim_tf.export.parity.check_parity`) fits.
            Defaults to `None`.

    Returns:
        ``{format: [paths]}``, the dynamic file first; for an operator-head G also
        ``{format + ":fields": [paths]}`` (:data:`FIELDS_SUFFIX`).

    Raises:
        ConfigError: an unknown format or a bad size.
        ExportError: a conversion failed, or ``check`` refused the files.
    """
    unknown = [f for f in formats if f not in TFLITE_FORMATS]
    if unknown:
        raise ConfigError(f"unknown TFLite format(s) {unknown}; known: {list(TFLITE_FORMATS)}")
    fixed_size = _check_size(fixed_size)
    target = os.path.join(os.fspath(out_dir), "tflite")
    os.makedirs(target, exist_ok=True)
    remove_stale_staging(target)  # what killed exports left
    clone = tflite_ready_clone(generator)
    fields = has_operator_head(generator)
    kinds = [(SIGNATURE, "")] + ([(FIELDS_SIGNATURE, FIELDS_SUFFIX)] if fields else [])
    written = {fmt + suffix: [] for _, suffix in kinds for fmt in formats}
    staged = {key: [] for key in written}
    sizes = [None] + ([fixed_size] if fixed_size is not None else [])
    try:
        for size in sizes:
            tmp = tempfile.mkdtemp(prefix="sagim-tflite-")
            try:
                _write_tflite_savedmodel(clone, tmp, size, [signature for signature, _ in kinds])
                for signature, suffix in kinds:
                    for fmt in formats:
                        data = convert_saved_model(tmp, TFLITE_FORMATS[fmt][0], signature)
                        filename = tflite_filename(name, fmt, size, fields=bool(suffix))
                        fd, path = tempfile.mkstemp(
                            dir=target, prefix=staging_prefix(), suffix=".tflite"
                        )
                        os.close(fd)
                        staged[fmt + suffix].append(path)
                        written[fmt + suffix].append(os.path.join(target, filename))
                        _write_bytes(path, data)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if check is not None:
            try:
                check({key: list(paths) for key, paths in staged.items()})
            except SagimError as exc:
                raise ExportError(f"no TFLite file was published under {target}: {exc}") from exc
        for key, paths in staged.items():
            for path, final in zip(paths, written[key]):
                publish_file(path, final)
                log.info("wrote %s (%s)", final, key)
    finally:
        for paths in staged.values():
            for path in paths:
                if os.path.exists(path):
                    os.remove(path)
    return written


def _write_bytes(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class TFLiteRunner:
    """Run a TFLite G, or an operator-head G's fields file, through ``ai_edge_litert``.

    A G file (``sagim_fp32.tflite``, signature ``serving_default``) is run with
    :meth:`edit`; a fields file (``sagim_fields_fp32.tflite``, signature ``fields``) with
    :meth:`fields`. :attr:`signature` says which one this is.

    Args:
        model: str, path or bytes. A ``.tflite`` file, or its contents.
        num_threads: int or None. Interpreter threads; None uses all cores.
            Defaults to `None`.

    Example:

    ```python
    runner = TFLiteRunner("export/tflite/sagim_fp32.tflite")
    edited = runner.edit(image, guidance)  # (H, W, 3) or (B, H, W, 3), float32 in [0, 1]
    ```
    """

    def __init__(self, model, num_threads: int | None = None):
        try:  # lazy: ai_edge_litert (the `tflite` extra) is needed only to run TFLite files
            from ai_edge_litert.interpreter import Interpreter
        except ModuleNotFoundError as exc:
            raise missing_extra(exc, "TFLiteRunner", "tflite") from exc

        kwargs = {"num_threads": num_threads or os.cpu_count() or 1}
        if isinstance(model, (bytes, bytearray)):
            kwargs["model_content"] = bytes(model)
            self.path = None
        else:
            self.path = os.fspath(model)
            if not os.path.isfile(self.path):
                raise InputError(f"{self.path}: TFLite file not found")
            kwargs["model_path"] = self.path
        try:
            self.interpreter = Interpreter(**kwargs)
            names = self.interpreter.get_signature_list()
            self.signature = FIELDS_SIGNATURE if FIELDS_SIGNATURE in names else SIGNATURE
            self.runner = self.interpreter.get_signature_runner(self.signature)
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"{self.path or 'model'}: cannot open as a SaGIM TFLite G ({exc})"
            ) from exc
        details = self.runner.get_input_details()
        if set(details) != {IMAGE_KEY, GUIDANCE_KEY}:
            raise InputError(
                f"TFLite inputs are {sorted(details)}; expected {sorted([IMAGE_KEY, GUIDANCE_KEY])}"
            )
        self._output_key = FIELDS_KEY if self.signature == FIELDS_SIGNATURE else OUTPUT_KEY
        signature = tuple(int(d) for d in details[IMAGE_KEY]["shape_signature"])
        self.dynamic = any(d < 0 for d in signature)
        self.input_size = None if self.dynamic else (signature[2], signature[1])  # (W, H)

    def _run(self, image, guidance):
        return self.runner(**{IMAGE_KEY: image, GUIDANCE_KEY: guidance})[self._output_key]

    def _call(self, image, guidance) -> np.ndarray:
        image = check_image(image)
        guidance = check_map(guidance, like=image)
        single = image.ndim == 3
        if single:
            image, guidance = image[None], guidance[None]
        if self.dynamic:
            out = self._run(image, guidance)
        else:
            w, h = self.input_size
            if image.shape[1:3] != (h, w):
                raise InputError(
                    f"this TFLite file takes {w}x{h} images only, got "
                    f"{image.shape[2]}x{image.shape[1]}; use the dynamic file or resize"
                )
            out = np.concatenate(
                [self._run(image[i : i + 1], guidance[i : i + 1]) for i in range(image.shape[0])]
            )
        out = np.asarray(out, dtype=np.float32)
        return out[0] if single else out

    def edit(self, image, guidance) -> np.ndarray:
        """Edit ``image`` under ``guidance``; shapes and ranges as for G; returns float32."""
        if self.signature != SIGNATURE:
            raise InputError(
                f"{self.path or 'model'} is a fields file (signature {self.signature!r}); "
                "call .fields() and apply them, or open the G file for .edit()"
            )
        return self._call(image, guidance)

    def fields(self, image, guidance) -> np.ndarray:
        """An operator-head G's raw fields (H, W, 7) or (B, H, W, 7) from a fields file.

        Apply them with :func:`sagim_tf.models.generate.apply_fields` (settings are
        ``range * tanh(field)``, :mod:`sagim_tf.layers.photo_operators`).
        """
        if self.signature != FIELDS_SIGNATURE:
            raise InputError(
                f"{self.path or 'model'} is a G file (signature {self.signature!r}), not a "
                "fields file; open <name>_fields_<fmt>.tflite (written for an operator-head G)"
            )
        return self._call(image, guidance)
