"""The edit from masks inside a TensorFlow graph: the ``edit_masks`` signature's body.

A serving client without E cannot build a guiding map; ``edit_masks`` takes the photo,
an emphasize mask, a de-emphasize mask and a strength, and does the rest in the graph:

1. ``S = clip(E(image), 0, 1)``, E's map (B, H, W, 1) (traced under
   :func:`traceable_resize`, which works around a Keras 3.15 regression that kept
   Itti-Koch and SalGAN from tracing at an unknown size);
2. :func:`guidance_from_masks`: the rule of :func:`sagim_tf.guidance.guidance_from_boxes`
   with one region of each kind per image (mask pixels above 0.5; a mask with none means
   "no region of that kind"), in TensorFlow ops:

   - ``ref = max(0.25, mean of the top 10% of S, mean of S over the de-emphasized
     region)`` (the last only where there is one);
   - ``S1 = S``, times ``lower_factor`` (0.2) over the de-emphasized region;
   - plus ``max(0, raise_to * ref - mean of S over the emphasized region)``
     (``raise_to`` 1.0) over the emphasized region;
   - ``S2 = S1 / max(1, max S1)``;
   - Gaussian smoothing with sigma 2% of the shorter side (radius ``ceil(3 sigma)``,
     reflected borders, OpenCV's kernel), clipped to [0, 1];

3. the edit of :func:`sagim_tf.inference.editor.edit_image` at the image's own size:
   the residual head runs G on ``clip((1 - A) S + A target, 0, 1)``; the operator head
   runs G's field model on the full target, scales the fields by A
   (:func:`scale_fields`: ``arctanh(A tanh(f))``, so A = 0 returns the photo exactly)
   and applies them with :mod:`sagim_tf.layers.photo_operators`.

The defaults are :mod:`sagim_tf.guidance`'s (``DEFAULT_RAISE_TO``,
``DEFAULT_LOWER_FACTOR``, ``DEFAULT_SIGMA_FRACTION``, ``REFERENCE_TOP_FRACTION``,
``MIN_REFERENCE``), read from there so that the two cannot drift apart.

Example:

```python
import numpy as np
from sagim_tf.export.guidance_graph import guidance_from_masks

saliency = np.random.default_rng(0).uniform(0, 1, (1, 24, 32, 1)).astype("float32")
emphasize = np.zeros_like(saliency)
emphasize[:, 4:12, 4:12] = 1.0
target = guidance_from_masks(saliency, emphasize, np.zeros_like(saliency))  # (1, 24, 32, 1)
```
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import keras
import tensorflow as tf
from keras import ops

from sagim_tf.guidance import (
    DEFAULT_LOWER_FACTOR,
    DEFAULT_RAISE_TO,
    DEFAULT_SIGMA_FRACTION,
    MIN_REFERENCE,
    REFERENCE_TOP_FRACTION,
)
from sagim_tf.layers.gaussian_blur import GaussianBlur
from sagim_tf.layers.photo_operators import (
    DETAIL_KERNEL_SIZE,
    DETAIL_SIGMA,
    apply_coefficients,
    coefficients,
)
from sagim_tf.models.generate import has_operator_head
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.errors import ConfigError

#: Mask pixels above this are inside the region (as :func:`sagim_tf.guidance.region_mask`).
MASK_THRESHOLD = 0.5


def gaussian_smooth(x, sigma_fraction: float = DEFAULT_SIGMA_FRACTION):
    """:func:`sagim_tf.guidance.gaussian_smooth` of maps (B, H, W, 1), sigma a share of the side.

    ``sigma = sigma_fraction * min(H, W)`` pixels, radius ``max(1, ceil(3 sigma))``; the
    kernel is OpenCV's (``exp(-x^2 / (2 sigma^2))`` normalised, computed in float64, used
    in float32); borders are reflected without repeating the edge pixel (OpenCV's
    ``BORDER_REFLECT_101``), or with it when a side is one pixel (``BORDER_REFLECT``),
    as :func:`sagim_tf.guidance.gaussian_smooth` picks them. The radius is at most the
    shorter side minus one for any size, so one reflection always suffices.
    """
    shape = tf.shape(x)
    short = tf.minimum(shape[1], shape[2])
    # float64, in the same order as the NumPy rule, so that ceil() sees the same value
    sigma = tf.constant(sigma_fraction, tf.float64) * tf.cast(short, tf.float64)
    radius = tf.maximum(1, tf.cast(tf.math.ceil(3.0 * sigma), tf.int32))
    taps = tf.cast(tf.range(-radius, radius + 1), tf.float64)
    kernel = tf.exp((-0.5 / (sigma * sigma)) * taps * taps)
    kernel = tf.cast(kernel * (1.0 / tf.reduce_sum(kernel)), tf.float32)
    zero = tf.zeros([2], tf.int32)

    def blur(mode):
        rows = tf.stack([zero, [radius, radius], zero, zero])
        cols = tf.stack([zero, zero, [radius, radius], zero])
        y = tf.pad(x, rows, mode=mode)
        y = tf.nn.conv2d(y, tf.reshape(kernel, [-1, 1, 1, 1]), 1, "VALID")
        y = tf.pad(y, cols, mode=mode)
        return tf.nn.conv2d(y, tf.reshape(kernel, [1, -1, 1, 1]), 1, "VALID")

    return tf.cond(short > 1, lambda: blur("REFLECT"), lambda: blur("SYMMETRIC"))


def _region_mean(s, region, count):
    return tf.reduce_sum(tf.where(region, s, 0.0), axis=[1, 2, 3]) / tf.maximum(count, 1.0)


def guidance_from_masks(
    saliency,
    emphasize,
    deemphasize,
    raise_to: float = DEFAULT_RAISE_TO,
    lower_factor: float = DEFAULT_LOWER_FACTOR,
    sigma_fraction: float = DEFAULT_SIGMA_FRACTION,
):
    """The guiding maps of :func:`sagim_tf.guidance.guidance_from_boxes`, one region of each kind.

    Args:
        saliency: E's maps, float32 (B, H, W, 1) in [0, 1].
        emphasize: float32 (B, H, W, 1) in [0, 1]; pixels above 0.5 are raised.
        deemphasize: float32 (B, H, W, 1) in [0, 1]; pixels above 0.5 are lowered.
        raise_to: float in (0, 2]. Defaults to :data:`sagim_tf.guidance.DEFAULT_RAISE_TO`.
        lower_factor: float in [0, 1). Defaults to
            :data:`sagim_tf.guidance.DEFAULT_LOWER_FACTOR`.
        sigma_fraction: float > 0. Smoothing sigma as a share of the shorter side.
            Defaults to :data:`sagim_tf.guidance.DEFAULT_SIGMA_FRACTION`.

    Returns:
        float32 (B, H, W, 1) in [0, 1]. An image with no region of either kind gets E's
        map, smoothed (the ``edit_masks`` endpoint refuses such an image instead).
    """
    s = tf.convert_to_tensor(saliency, tf.float32)
    emph = tf.convert_to_tensor(emphasize, tf.float32) > MASK_THRESHOLD
    deem = tf.convert_to_tensor(deemphasize, tf.float32) > MASK_THRESHOLD
    shape = tf.shape(s)
    flat = tf.reshape(s, [shape[0], -1])
    pixels = tf.cast(tf.shape(flat)[1], tf.float64)
    # Python's round() and tf.round both round half to even
    top = tf.maximum(1, tf.cast(tf.round(REFERENCE_TOP_FRACTION * pixels), tf.int32))
    top_mean = tf.reduce_mean(tf.math.top_k(flat, k=top, sorted=False).values, axis=-1)
    deem_count = tf.reduce_sum(tf.cast(deem, tf.float32), axis=[1, 2, 3])
    deem_mean = tf.where(deem_count > 0, _region_mean(s, deem, deem_count), 0.0)
    reference = tf.maximum(tf.maximum(top_mean, deem_mean), MIN_REFERENCE)  # (B,)

    s1 = tf.where(deem, tf.constant(lower_factor, tf.float32) * s, s)
    emph_count = tf.reduce_sum(tf.cast(emph, tf.float32), axis=[1, 2, 3])
    lift = tf.maximum(0.0, raise_to * reference - _region_mean(s, emph, emph_count))
    s1 = s1 + tf.where(emph, lift[:, None, None, None], 0.0)
    s2 = s1 / tf.maximum(1.0, tf.reduce_max(s1, axis=[1, 2, 3], keepdims=True))
    return tf.clip_by_value(gaussian_smooth(s2, sigma_fraction), 0.0, 1.0)


def scale_fields(fields, strength):
    """:func:`sagim_tf.models.generate.scale_fields` in the graph, one strength per image.

    ``arctanh(strength * tanh(fields))``: the operator settings (``range * tanh``) scaled
    by ``strength``; exactly 0 at strength 0 and the fields unchanged at strength 1.

    Args:
        fields: float32 (B, H, W, 7) raw fields.
        strength: float32 (B,) in [0, 1].
    """
    a = tf.reshape(tf.cast(strength, tf.float32), [-1, 1, 1, 1])
    # at a = 1, tanh may round to 1 and arctanh to inf: keep the fields as they are there
    return tf.where(a == 1.0, fields, tf.atanh(a * tf.tanh(fields)))


_RESIZE_LOCK = threading.RLock()
#: Estimators whose trace at an unknown size succeeded (weak: they are not kept alive).
_TRACEABLE: weakref.WeakSet = weakref.WeakSet()


@contextlib.contextmanager
def traceable_resize():
    """While tracing, let ``keras.ops.image.resize`` take a size that is a tensor.

    Keras 3.15's ``ops.image.resize`` checks ``size[0] <= 0`` in Python, which fails when
    the size is a symbolic tensor (a regression of keras-team/keras#22079, undone upstream
    by keras-team/keras#23315). Itti-Koch and SalGAN's :class:`~sagim_tf.estimators.
    ResizingEstimator` resize their maps back to the input's size that way, so they could
    not be traced at an unknown image size. Inside this block a tensor size goes straight
    to ``tf.image.resize``, which is what Keras' TensorFlow backend calls for a plain
    resize (same arithmetic); every other call is Keras' own. Only the traced graph is
    affected: a SavedModel runs without Keras' Python code.
    """
    with _RESIZE_LOCK:
        original = ops.image.resize

        def resize(images, size, interpolation="bilinear", antialias=False, **kwargs):
            plain = (  # none of the crop, pad or channels-first options
                not kwargs.get("crop_to_aspect_ratio")
                and not kwargs.get("pad_to_aspect_ratio")
                and kwargs.get("data_format") in (None, "channels_last")
            )
            if plain and any(tf.is_tensor(v) for v in size):
                return tf.image.resize(images, size, method=interpolation, antialias=antialias)
            return original(
                images, size, interpolation=interpolation, antialias=antialias, **kwargs
            )

        ops.image.resize = resize
        try:
            yield
        finally:
            ops.image.resize = original


def check_graph_estimator(estimator, what: str = "the estimator") -> None:
    """Refuse an estimator that cannot run inside a TensorFlow graph at any image size.

    A Keras model (Itti-Koch, SalGAN, ``keras:PATH``, a SaGIM's own E) can (traced under
    :func:`traceable_resize`); the OpenCV judges (``spectral-residual``, ``fine-grained``)
    run in NumPy and cannot.

    Raises:
        ConfigError: ``estimator`` is not a Keras layer, or its trace at an unknown
            (B, H, W) fails (the message carries TensorFlow's reason).
    """
    if not isinstance(estimator, keras.layers.Layer):
        raise ConfigError(
            f"{what} ({type(estimator).__name__}) runs outside TensorFlow (NumPy/OpenCV), so "
            "it cannot be inside a SavedModel graph; the edit_masks signature needs a Keras "
            "estimator such as itti-koch, salgan:PATH or keras:PATH"
        )
    if estimator in _TRACEABLE:
        return
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    try:
        with traceable_resize():
            tf.function(lambda x: estimator(x, training=False)).get_concrete_function(spec)
    except Exception as exc:  # any tracing failure: say which, and refuse
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"{what} ({type(estimator).__name__}) cannot be traced into a graph at an "
            f"unknown image size ({type(exc).__name__}: {first}); the edit_masks signature "
            "needs one that can"
        ) from exc
    _TRACEABLE.add(estimator)


class MaskEditor:
    """The ``edit_masks`` computation for one G and one E, as TensorFlow ops.

    Args:
        generator: keras.Model. G, either head.
        estimator: keras.Model. E, images (B, H, W, 3) in [0, 1] -> maps (B, H, W, 1).

    Raises:
        ConfigError: E cannot be traced (:func:`check_graph_estimator`).
    """

    def __init__(self, generator, estimator):
        check_graph_estimator(estimator)
        self.generator = generator
        self.estimator = estimator
        self.operator_head = has_operator_head(generator)
        if self.operator_head:
            self.fields_model = field_model(generator)
            self.blur = GaussianBlur(DETAIL_KERNEL_SIZE, DETAIL_SIGMA)

    def saliency(self, image):
        """``clip(E(image), 0, 1)`` as float32 (B, H, W, 1); E must keep the image's size.

        Trace it under :func:`traceable_resize` (the exporter does).
        """
        out = tf.cast(self.estimator(image, training=False), tf.float32)
        check = tf.debugging.assert_equal(
            tf.shape(out),
            tf.concat([tf.shape(image)[:3], [1]], 0),
            message="estimator: its map does not have the image's (B, H, W, 1) shape",
            name="check_estimator_shape",
        )
        with tf.control_dependencies([check]):
            return tf.clip_by_value(out, 0.0, 1.0)

    def __call__(self, image, emphasize, deemphasize, strength):
        """The edit, float32 (B, H, W, 3) in [0, 1].

        Args:
            image: float32 (B, H, W, 3) in [0, 1].
            emphasize, deemphasize: float32 (B, H, W, 1) masks in [0, 1].
            strength: float32 (B,) in [0, 1].
        """
        before = self.saliency(image)
        target = guidance_from_masks(before, emphasize, deemphasize)
        a = tf.reshape(tf.cast(strength, tf.float32), [-1, 1, 1, 1])
        if self.operator_head:
            fields = tf.cast(self.fields_model([image, target], training=False), tf.float32)
            fields = scale_fields(fields, strength)
            edited = apply_coefficients(image, coefficients(fields), self.blur)
        else:
            used = tf.clip_by_value((1.0 - a) * before + a * target, 0.0, 1.0)
            edited = self.generator([image, used], training=False)
        return tf.clip_by_value(tf.cast(edited, tf.float32), 0.0, 1.0)
