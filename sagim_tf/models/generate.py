"""G's one compiled generate step, shared by every caller that edits with G.

:func:`make_generate_function` wraps G's inference pass in a ``tf.function`` once per
generator and caches it (the pattern of keras-hub's ``make_generate_function``): the
editor (:class:`~sagim_tf.inference.editor.Editor`), ``SaGIM.edit``, the evaluation
methods and the training image grid all run G through it. :func:`generate` is the NumPy
face: it normalises and checks the inputs once, batches them through the step and returns
a NumPy array of the input's shape.

For an operator-head G (``head="operators"``), :func:`predict_fields` runs its compiled
fields step on a small copy of a photo and :func:`apply_fields` applies the fields to the
photo at its own resolution, strip by strip.
"""

from __future__ import annotations

import functools
import weakref

import cv2
import numpy as np
import tensorflow as tf

from sagim_tf.layers.gaussian_blur import GaussianBlur
from sagim_tf.layers.photo_operators import (
    DETAIL_KERNEL_SIZE,
    DETAIL_SIGMA,
    NUM_COEFFICIENTS,
    NUM_OPERATORS,
    apply_coefficients,
    coefficients,
)
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError

#: generator -> its compiled step. Weak keys: a step does not keep its G alive.
_GENERATE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Any batch and size, one trace: G is fully convolutional.
_SIGNATURE = (
    tf.TensorSpec((None, None, None, 3), tf.float32, name="image"),
    tf.TensorSpec((None, None, None, 1), tf.float32, name="guidance"),
)


def make_generate_function(generator):
    """G's compiled generate step, built at the first call and cached per generator.

    The step maps float32 ``image`` (B, H, W, 3) and ``guidance`` (B, H, W, 1) to G's edit
    ``G([image, guidance], training=False)``, clipped to [0, 1], as a tensor. It is traced
    once for any batch and size.

    Args:
        generator: keras.Model. G, called as ``G([image, guidance])``.

    Returns:
        The ``tf.function``; the same object for every call with the same ``generator``.
    """
    step = _GENERATE_FUNCTIONS.get(generator)
    if step is not None:
        return step
    # Only a weak reference in the closure, so the cache's value does not hold its key.
    generator_ref = weakref.ref(generator)

    @tf.function(input_signature=_SIGNATURE)
    def generate_step(image, guidance):
        edited = generator_ref()([image, guidance], training=False)
        return tf.clip_by_value(tf.cast(edited, tf.float32), 0.0, 1.0)

    _GENERATE_FUNCTIONS[generator] = generate_step
    return generate_step


def normalize_generate_inputs(image, guidance):
    """Check and batch the inputs of :func:`generate` once.

    Args:
        image: array-like. (H, W, 3) or (B, H, W, 3) in [0, 1]; uint8 is scaled by 1/255.
        guidance: array-like. (H, W[, 1]) or (B, H, W[, 1]) in [0, 1], the image's size.

    Returns:
        ``(image, guidance, single)``: float32 batches (B, H, W, 3) and (B, H, W, 1), and
        whether the input was one unbatched image.
    """
    image = check_image(image)
    guidance = check_map(guidance, "guidance", like=image)
    single = image.ndim == 3
    if single:
        image, guidance = image[None], guidance[None]
    return image, guidance, single


def generate(generator, image, guidance, batch_size: int | None = None) -> np.ndarray:
    """G's edit of NumPy images through the cached compiled step.

    Args:
        generator: keras.Model. G.
        image: array-like. (H, W, 3) or (B, H, W, 3) in [0, 1] (uint8 is scaled).
        guidance: array-like. The guiding map(s) of the image's size, in [0, 1].
        batch_size: int or None. Images per call of G; ``None`` runs them all at once.
            Defaults to ``None``.

    Returns:
        float32 array in [0, 1] of the image's shape.

    Raises:
        InputError: an input has the wrong shape, values outside [0, 1] or non-finite ones.
        ConfigError: ``batch_size`` is not a positive integer.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    image, guidance, single = normalize_generate_inputs(image, guidance)
    step = make_generate_function(generator)
    size = batch_size or len(image)
    out = np.concatenate(
        [
            np.asarray(step(image[i : i + size], guidance[i : i + size]))
            for i in range(0, len(image), size)
        ],
        axis=0,
    )
    return out[0] if single else out


# ----------------------------------------------------------------- the operator head's fields
#: generator -> its compiled fields step (operator head only).
_FIELD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Rows of the full-size photo the operators are applied to at a time (bounds memory).
APPLY_STRIP_ROWS = 512
#: Rows of context above and below a strip: the detail operator's blur reaches 3 pixels.
_APPLY_HALO = 8


def has_operator_head(generator) -> bool:
    """Whether G predicts photographic-operator fields (``head="operators"``)."""
    return getattr(generator, "head", "residual") == "operators"


def make_fields_function(generator):
    """The compiled step ``(image, guidance) -> raw fields (B, H, W, 7)`` of an operator-head G.

    Cached per generator like :func:`make_generate_function`; traced once for any size.
    """
    step = _FIELD_FUNCTIONS.get(generator)
    if step is not None:
        return step
    if not has_operator_head(generator):
        raise ConfigError("this G has a residual head; only an operator-head G has fields")
    fields_model = field_model(generator)

    @tf.function(input_signature=_SIGNATURE)
    def fields_step(image, guidance):
        return tf.cast(fields_model([image, guidance], training=False), tf.float32)

    _FIELD_FUNCTIONS[generator] = fields_step
    return fields_step


def predict_fields(generator, image, guidance) -> np.ndarray:
    """Raw operator fields (H, W, 7) of one image (H, W, 3) under its guiding map."""
    image, guidance, _ = normalize_generate_inputs(image, guidance)
    return np.asarray(make_fields_function(generator)(image[:1], guidance[:1]))[0]


def scale_fields(fields, strength: float) -> np.ndarray:
    """Fields whose operator settings are ``strength`` times the given ones.

    Settings are ``range * tanh(field)``, so the scaled field is
    ``arctanh(strength * tanh(field))``: 0 gives exactly zero fields (the photo, bit for
    bit), 1 gives the fields unchanged.
    """
    fields = np.asarray(fields, np.float32)
    if strength == 1.0:
        return fields
    return np.arctanh(strength * np.tanh(fields)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _apply_step():
    blur = GaussianBlur(DETAIL_KERNEL_SIZE, DETAIL_SIGMA)

    @tf.function(
        input_signature=(
            tf.TensorSpec((1, None, None, 3), tf.float32),
            tf.TensorSpec((1, None, None, NUM_COEFFICIENTS), tf.float32),
        )
    )
    def apply(image, coef):
        return apply_coefficients(image, coef, blur)

    return apply


def apply_fields(image, fields, strip_rows: int = APPLY_STRIP_ROWS) -> np.ndarray:
    """Apply operator fields of any resolution to a photo at its own resolution.

    The operators' coefficients (:func:`~sagim_tf.layers.photo_operators.coefficients`:
    gains, contrast, tone, saturation and detail amounts, all the ``tanh``/``exp`` work)
    are computed on the fields' own grid, resized bilinearly to the photo's size, and
    applied over strips of ``strip_rows`` rows with a halo, so that a 12-megapixel photo
    costs a few multiply-adds per pixel and bounded memory. At the fields' own size this
    is G's own output; at another size it interpolates the coefficients where G's graph
    interpolates the raw fields (the same smooth edit, not the same bits).

    Args:
        image: (H, W, 3) float32 in [0, 1].
        fields: (h, w, 7) raw fields (:func:`predict_fields`, :func:`scale_fields`).
        strip_rows: int. Rows per strip. Defaults to :data:`APPLY_STRIP_ROWS`.

    Returns:
        The edited photo, float32 (H, W, 3) in [0, 1].
    """
    image = np.ascontiguousarray(check_image(image), np.float32)
    fields = np.asarray(fields, np.float32)
    if image.ndim != 3 or fields.ndim != 3 or fields.shape[-1] != NUM_OPERATORS:
        raise ConfigError(
            f"apply_fields: expected an (H, W, 3) image and (h, w, "
            f"{NUM_OPERATORS}) fields, got {image.shape} and {fields.shape}"
        )
    height, width = image.shape[:2]
    if not np.any(fields):
        return image.copy()
    coef = np.asarray(coefficients(fields[None]))[0]
    if coef.shape[:2] != (height, width):
        # OpenCV's bilinear resize (half-pixel centres, clamped edges, as G's own
        # upsampling) is several times faster than NumPy or TensorFlow here
        coef = cv2.resize(coef, (width, height), interpolation=cv2.INTER_LINEAR)
        coef = coef.reshape(height, width, NUM_COEFFICIENTS)
    step = _apply_step()
    out = np.empty_like(image)
    for r0 in range(0, height, strip_rows):
        r1 = min(height, r0 + strip_rows)
        a0, a1 = max(0, r0 - _APPLY_HALO), min(height, r1 + _APPLY_HALO)
        edited = np.asarray(step(image[None, a0:a1], coef[None, a0:a1]))[0]
        out[r0:r1] = edited[r0 - a0 : r1 - a0]
    return out
