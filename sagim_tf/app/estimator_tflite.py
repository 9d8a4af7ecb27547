"""E as a fixed-size TFLite file, so that the phone app computes saliency maps on the device.

The app shows E's map of the photo before and after an edit, and builds the guiding map
from E's map (:func:`sagim_tf.guidance.guidance_from_boxes`'s rule, in JavaScript). E
therefore ships as a TFLite file of one fixed size (the app's working size), with one
signature ``serving_default``: input ``image`` float32 (1, H, W, 3) in [0, 1], output
``saliency`` float32 (1, H, W, 1) in [0, 1], builtin ops only.

An estimator that resizes with antialiasing (Itti-Koch shrinks its input to its working
size that way) would need TensorFlow's ``ScaleAndTranslate``, which has no TFLite builtin
kernel. At a fixed size such a resize is a linear map with constant matrices, so while E is
traced for the app, ``keras.ops.image.resize(..., antialias=True)`` is carried out as two
matrix products (``BATCH_MATMUL``) whose matrices are TensorFlow's own antialiased resize of
the identity, computed once. E's graph is otherwise its own, and its map is E's map to
float32 rounding.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from sagim_tf.export.tflite import convert_saved_model
from sagim_tf.utils.checks import parse_size
from sagim_tf.utils.errors import ExportError

#: The names of E's TFLite signature, its input and its output.
SIGNATURE = "serving_default"
IMAGE_KEY = "image"
SALIENCY_KEY = "saliency"


def resize_matrix(out_len: int, in_len: int) -> np.ndarray:
    """The (out_len, in_len) matrix of TensorFlow's antialiased bilinear resize on one axis."""
    with tf.init_scope():  # eager, also while a function is being traced
        eye = tf.eye(in_len, dtype=tf.float32)[None, :, :, None]  # (1, in, in, 1): column k = e_k
        rows = tf.image.resize(eye, (out_len, in_len), method="bilinear", antialias=True)
        return np.asarray(rows[0, :, :, 0], np.float32)


@contextlib.contextmanager
def _antialiased_resize_as_matmul():
    """While active, ``keras.ops.image.resize`` with ``antialias=True`` on a tensor of static
    size is done as matrix products (see the module docstring); other calls are untouched."""
    original = keras.ops.image.resize

    def resize(images, size, interpolation="bilinear", antialias=False, **kwargs):
        shape = tuple(images.shape)
        static = len(shape) == 4 and all(d is not None for d in shape[1:3])
        if not antialias or interpolation != "bilinear" or kwargs or not static:
            return original(
                images, size, interpolation=interpolation, antialias=antialias, **kwargs
            )
        out_h, out_w = (int(v) for v in size)
        rows = tf.constant(resize_matrix(out_h, int(shape[1])))  # (h, H)
        cols = tf.constant(resize_matrix(out_w, int(shape[2])).T)  # (W, w)
        x = tf.transpose(tf.convert_to_tensor(images), (0, 3, 1, 2))  # (B, C, H, W)
        x = tf.matmul(tf.matmul(rows[None, None], x), cols[None, None])  # (B, C, h, w)
        return tf.transpose(x, (0, 2, 3, 1))

    with mock.patch.object(keras.ops.image, "resize", resize):
        yield


def _write_savedmodel(estimator, width: int, height: int, directory: str) -> None:
    """E's SavedModel with one endpoint ``image (1, height, width, 3) -> {"saliency": (1,
    height, width, 1)}``, traced and written with :func:`_antialiased_resize_as_matmul`
    active (an ``ExportArchive`` tracks E's weights, which a plain ``tf.Module`` misses)."""
    spec = tf.TensorSpec((1, height, width, 3), tf.float32, name=IMAGE_KEY)

    def saliency(image):
        out = tf.cast(estimator(image, training=False), tf.float32)
        return {SALIENCY_KEY: tf.clip_by_value(out, 0.0, 1.0)}

    with _antialiased_resize_as_matmul():
        archive = keras.export.ExportArchive()
        archive.track(estimator)
        archive.add_endpoint(name=SIGNATURE, fn=saliency, input_signature=[spec])
        archive.write_out(directory, verbose=False)


def estimator_to_tflite(estimator, size) -> bytes:
    """E as a float32 TFLite flatbuffer at ``size`` = ``(width, height)``.

    Raises:
        ExportError: E has an op without a TFLite builtin kernel (named).
        ConfigError: a bad size.
    """
    width, height = parse_size(size, "estimator size", minimum=1)
    tmp = tempfile.mkdtemp(prefix="sagim-app-e-")
    try:
        _write_savedmodel(estimator, width, height, tmp)
        try:
            return convert_saved_model(tmp, "float32", SIGNATURE)
        except ExportError as exc:
            raise ExportError(f"the estimator E cannot run in the app: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
