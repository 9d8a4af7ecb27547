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

import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import tensorflow as tf

from sagim_tf.layers.gaussian_blur import gaussian_kernel_1d
from sagim_tf.layers.photo_operators import (
    DETAIL_KERNEL_SIZE,
    DETAIL_SIGMA,
    LUMA,
    NUM_REFINED_OPERATORS,
    check_fields,
    clarity_base,
    clarity_taps,
    coefficients,
)
from sagim_tf.models.operator_head import field_model
from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.images import as_float, small_copy

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
#: Rows of the photo the operators are applied to at a time (bounds the scratch memory:
#: about 15 floats per pixel of a strip; 48 rows were as fast as any on a 12 MP photo).
APPLY_STRIP_ROWS = 48
#: Rows of context above and below a strip: the detail operator's blur reaches 3 pixels.
_APPLY_HALO = DETAIL_KERNEL_SIZE // 2
#: The detail operator's blur taps, the same as G's own ``GaussianBlur`` layer's.
_DETAIL_TAPS = gaussian_kernel_1d(DETAIL_KERNEL_SIZE, DETAIL_SIGMA)
_LUMA = np.asarray(LUMA, np.float32)
#: Most threads :func:`apply_fields` splits a photo's strips over.
_APPLY_THREADS = 4


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


def _source_rows(out_rows: int, in_rows: int):
    """OpenCV ``INTER_LINEAR``'s vertical taps: for each output row, the two source rows
    and the second one's weight (half-pixel centres, edges clamped, as G's upsampling)."""
    pos = (np.arange(out_rows, dtype=np.float64) + 0.5) * (in_rows / out_rows) - 0.5
    pos = np.clip(pos, 0.0, in_rows - 1)
    first = np.floor(pos).astype(np.int64)
    weight = (pos - first).astype(np.float32)
    return first, np.minimum(first + 1, in_rows - 1), weight


def _add_product(x, t, coef):
    """``x += t * coef`` in one pass per channel (x, t: (rows, 3, W); coef: (rows, 1, W))."""
    for ch in range(3):
        cv2.accumulateProduct(t[:, ch], coef[:, 0], x[:, ch])


def _apply_strips(image, planes, taps, out, rows, strip_rows, upsampled_detail, clarity):
    """Apply coefficient rows to the strips of ``image`` that start in ``rows``, into ``out``.

    ``planes`` (h, P, W) are the coefficients on the fields' rows at the photo's width and
    ``taps`` their vertical interpolation (:func:`_source_rows`). The first six planes are
    the gains, contrast, tone and saturation; then the detail amount (blurred here, at the
    fields' own size) or, with ``upsampled_detail``, the change made at G's size by detail
    and clarity together (three planes, see :func:`apply_fields`); then, with ``clarity``
    (at the fields' own size only), the clarity change (three planes). Works in the layout
    (rows, channel, width), so that every step is one NumPy call on contiguous rows, with
    the steps of :func:`~sagim_tf.layers.photo_operators.apply_coefficients`. A uint8
    ``image`` is read as ``k / 255`` and a uint8 ``out`` written as
    :func:`~sagim_tf.utils.io.to_uint8` rounds, so uint8 in and out is the float edit
    rounded, without a float copy of the photo.
    """
    height, width = image.shape[:2]
    first, second, weight = taps
    halo = 0 if upsampled_detail else _APPLY_HALO
    n = min(height, strip_rows + 2 * halo)
    coef = np.empty((n, planes.shape[1], width), np.float32)
    x = np.empty((n, 3, width), np.float32)
    tmp = np.empty_like(x)
    tmp2 = np.empty_like(x)
    luma = np.empty((n, 1, width), np.float32)
    rounded = np.empty((n, 3, width), np.uint8) if out.dtype == np.uint8 else None
    for r0 in rows:
        r1 = min(height, r0 + strip_rows)
        a0, a1 = max(0, r0 - halo), min(height, r1 + halo)
        m = a1 - a0
        c, xs, ts, t2, ls = coef[:m], x[:m], tmp[:m], tmp2[:m], luma[:m]
        for j, row in enumerate(range(a0, a1)):
            t = float(weight[row])
            if t == 0.0:
                c[j] = planes[first[row]]
            else:
                cv2.addWeighted(planes[first[row]], 1.0 - t, planes[second[row]], t, 0.0, c[j])
        gains, contrast, tone = c[:, 0:3], c[:, 3:4], c[:, 4:5]
        saturation = c[:, 5:6]
        detail = c[:, 6:9] if upsampled_detail else c[:, 6:7]
        # white balance and exposure, read from the (rows, width, channel) photo, with
        # the highlights rolled off: g x / (1 + max(m - 1, 0) x), m the gains' luma
        pixels = image[a0:a1].transpose(0, 2, 1)
        if image.dtype == np.uint8:
            np.divide(pixels, np.float32(255.0), out=xs)
        else:
            np.copyto(xs, pixels)
        np.matmul(_LUMA, gains, out=ls[:, 0])
        ls -= np.float32(1.0)
        np.maximum(ls, np.float32(0.0), out=ls)
        np.multiply(xs, ls, out=ts)
        ts += np.float32(1.0)
        xs *= gains
        xs /= ts
        # contrast: x + k x (1 - x) (2x - 1), an S-curve through 0, 1/2 and 1
        np.multiply(xs, np.float32(2.0), out=t2)
        t2 -= np.float32(1.0)
        np.subtract(np.float32(1.0), xs, out=ts)
        ts *= xs
        ts *= t2
        _add_product(xs, ts, contrast)
        # tone: x + a x (1 - x)
        np.subtract(np.float32(1.0), xs, out=ts)
        ts *= xs
        _add_product(xs, ts, tone)
        # saturation: x + (x - Y) s
        np.matmul(_LUMA, xs, out=ls[:, 0])
        np.subtract(xs, ls, out=ts)
        _add_product(xs, ts, saturation)
        if upsampled_detail:
            # detail: the change G's detail operator made at its own size, interpolated
            xs += detail
        else:
            # detail: x + d (x - blur(x)), the blur with G's taps and reflected edges
            for ch in range(3):
                cv2.sepFilter2D(
                    xs[:, ch],
                    -1,
                    _DETAIL_TAPS,
                    _DETAIL_TAPS,
                    ts[:, ch],
                    borderType=cv2.BORDER_REFLECT_101,
                )
            np.subtract(xs, ts, out=ts)
            _add_product(xs, ts, detail)
        if clarity:
            # clarity: the change made on the whole image at G's size (see apply_fields)
            xs += c[:, -3:]
        done = xs[r0 - a0 : r1 - a0]
        np.clip(done, 0.0, 1.0, out=done)
        if rounded is not None:
            done *= np.float32(255.0)
            done += np.float32(0.5)
            np.copyto(rounded[: r1 - r0], done, casting="unsafe")
            done = rounded[: r1 - r0]
        cv2.merge([done[:, 0], done[:, 1], done[:, 2]], out[r0:r1])


def _work_copy(image, work_image, height: int, width: int) -> np.ndarray:
    """The photo at the fields' size (h, w, 3) float32 in [0, 1]: ``work_image`` checked,
    or ``image``'s small copy as the editor makes it for G
    (:func:`~sagim_tf.utils.images.small_copy`: no float copy of a uint8 photo)."""
    if work_image is None:
        return small_copy(image, height, width)
    small = np.asarray(work_image)
    if small.shape != (height, width, 3):
        raise ConfigError(
            f"apply_fields: work_image must be the photo at the fields' size "
            f"{(height, width, 3)}, got {small.shape}"
        )
    if small.dtype == np.uint8:
        return as_float(small)
    return check_image(small, "work_image").astype(np.float32)


def _blurred(x, taps) -> np.ndarray:
    """x (h, w, 3) or (h, w) float32 filtered with the separable ``taps``, edges reflected
    as G's ``GaussianBlur`` reflects them."""
    return cv2.sepFilter2D(
        np.ascontiguousarray(x, np.float32), -1, taps, taps, borderType=cv2.BORDER_REFLECT_101
    )


def _changes_at_work_size(work_image, coef):
    """The operators applied on the image G saw, at its own size: ``(x, detail change)``,
    ``x`` (h, w, 3) after the first five operators of ``work_image`` (h, w, 3) under
    coefficients ``coef`` (h, w, 7 or 8), and the detail change ``d (x - blur(x))``."""
    gains = coef[..., 0:3]
    excess = np.maximum(gains @ _LUMA - np.float32(1.0), 0)[..., None]
    x = gains * work_image / (np.float32(1.0) + excess * work_image)
    x = x + coef[..., 3:4] * x * (np.float32(1.0) - x) * (np.float32(2.0) * x - np.float32(1.0))
    x = x + coef[..., 4:5] * x * (np.float32(1.0) - x)
    x = x + (x - (x @ _LUMA)[..., None]) * coef[..., 5:6]
    return x, (coef[..., 6:7] * (x - _blurred(x, _DETAIL_TAPS))).astype(np.float32)


def _clarity_change(x, amount) -> np.ndarray:
    """The clarity change ``c (Y - base(Y))`` (h, w, 3), the same in each channel, of ``x``
    (h, w, 3) after detail, at G's size, ``amount`` (h, w, 1): the layer's
    :func:`clarity_base` of the luma ``Y``, filtered with OpenCV."""
    y = np.ascontiguousarray(x @ _LUMA, np.float32)  # (h, w)
    base = clarity_base(y, clarity_taps(x.shape[0], x.shape[1]), blur=_blurred)
    change = (amount * (y - base)[..., None]).astype(np.float32)
    return np.repeat(change, 3, axis=-1)


def apply_fields(image, fields, strip_rows: int = APPLY_STRIP_ROWS, work_image=None) -> np.ndarray:
    """Apply operator fields of any resolution to a photo at its own resolution.

    The operators' coefficients (:func:`~sagim_tf.layers.photo_operators.coefficients`:
    gains, contrast, tone, saturation and detail amounts, all the ``tanh``/``exp`` work)
    are computed on the fields' own grid and interpolated bilinearly to the photo's size
    (OpenCV's ``INTER_LINEAR``: across once, then down strip by strip); the operators are
    applied with NumPy and OpenCV over strips of ``strip_rows`` rows with a halo for the
    detail blur, on up to :data:`_APPLY_THREADS` threads. A 12-megapixel photo costs a
    few multiply-adds per pixel (about 0.4 s of one core) and never holds its
    coefficients at full size. At the fields' own size this is G's own output (float32
    rounding aside); at another size it interpolates the coefficients where G's graph
    interpolates the raw fields (the same smooth edit, not the same bits).

    The detail operator works at a scale: its blur has a sigma of 1.5 pixels of the image
    G saw. At the photo's own, larger size the same blur would sharpen only the finest
    texture and the sensor noise, an edit G never judged. So at another size the detail
    change ``d (x - blur(x))`` is made where G made it, on the working copy
    (``work_image``: the photo at the fields' size, as G saw it; made with OpenCV's area
    resize when not given), and interpolated to the photo like the coefficients. Clarity
    (fields with an eighth channel) works at a larger scale still, a blur of 5% of the
    short side: its change is always made on the working copy, after the other seven
    operators, and interpolated the same way (at the fields' own size, that is G's own
    output again).

    Args:
        image: (H, W, 3) float32 in [0, 1], or uint8. A uint8 photo is read as ``k / 255``
            and its edit returned as uint8, rounded as
            :func:`~sagim_tf.utils.io.to_uint8` rounds (the float edit, rounded), without
            a float copy of the photo.
        fields: (h, w, 7) raw fields (:func:`predict_fields`, :func:`scale_fields`), or
            (h, w, 8) with clarity last, as refinement returns them
            (:class:`~sagim_tf.models.refine.FieldRefiner`).
        strip_rows: int. Rows per strip. Defaults to :data:`APPLY_STRIP_ROWS`.
        work_image: (h, w, 3) float in [0, 1], or uint8, or None. The photo at the
            fields' size, as G saw it; only used when the photo's size differs. Defaults
            to None (made from ``image``).

    Returns:
        The edited photo (H, W, 3): float32 in [0, 1], or uint8 for a uint8 photo.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:  # every value is a valid pixel
        image = np.ascontiguousarray(image)
    else:
        image = np.ascontiguousarray(check_image(image), np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"apply_fields: expected an (H, W, 3) image, got {image.shape}")
    fields = check_fields(fields, "apply_fields")
    if isinstance(strip_rows, bool) or not isinstance(strip_rows, int) or strip_rows < 1:
        raise ConfigError(
            f"apply_fields: strip_rows must be a positive integer, got {strip_rows!r}"
        )
    height, width = image.shape[:2]
    if not np.any(fields):
        return image.copy()
    # eager: a compiled step would save a few ms per call but cost a trace per process
    coef = np.asarray(coefficients(fields[None]), np.float32)[0]
    upsampled_detail = coef.shape[:2] != (height, width)
    has_clarity = coef.shape[-1] == NUM_REFINED_OPERATORS
    # at the fields' own size with clarity, its change travels in planes of its own; at
    # another size it rides in detail's planes
    clarity_planes = has_clarity and not upsampled_detail
    if upsampled_detail or has_clarity:
        if upsampled_detail:
            small = _work_copy(image, work_image, coef.shape[0], coef.shape[1])
        else:  # the photo is at the fields' size: it is the working copy
            small = as_float(image)
        x, detail = _changes_at_work_size(small, coef)
        if upsampled_detail:
            # both changes are added after saturation: one set of planes carries their sum
            change = detail + _clarity_change(x + detail, coef[..., 7:8]) if has_clarity else detail
            coef = np.concatenate([coef[..., :6], change], axis=-1)
        else:  # detail blurred per strip at the photo's size, then clarity's change added
            coef = np.concatenate([coef[..., :7], _clarity_change(x + detail, coef[..., 7:8])], -1)
    if coef.shape[1] != width:
        # across first; OpenCV's bilinear resize is separable, so interpolating down per
        # strip afterwards is its 2-D resize up to float32 rounding
        coef = cv2.resize(coef, (width, coef.shape[0]), interpolation=cv2.INTER_LINEAR)
        coef = coef.reshape(-1, width, coef.shape[-1])
    planes = np.ascontiguousarray(coef.transpose(0, 2, 1))  # (h, P, W): rows of planes
    taps = _source_rows(height, planes.shape[0])
    out = np.empty_like(image)
    starts = list(range(0, height, strip_rows))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(_APPLY_THREADS, cpus or 1, len(starts)))
    if workers == 1:
        _apply_strips(
            image, planes, taps, out, starts, strip_rows, upsampled_detail, clarity_planes
        )
        return out
    # strips dealt round-robin to the threads; NumPy and OpenCV release the GIL
    runs = [starts[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        for done in [
            pool.submit(
                _apply_strips,
                image,
                planes,
                taps,
                out,
                run,
                strip_rows,
                upsampled_detail,
                clarity_planes,
            )
            for run in runs
        ]:
            done.result()
    return out
