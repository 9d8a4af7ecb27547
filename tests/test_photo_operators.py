"""The photographic operators: identity at zero, monotone, bounded, finite gradients.

G's seven are tested with fields of seven channels; clarity, which only refinement sets,
with fields of eight.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.layers.photo_operators import (
    CLARITY_SCALE,
    LUMA,
    NUM_OPERATORS,
    NUM_REFINED_OPERATORS,
    OPERATOR_NAMES,
    OPERATOR_RANGES,
    REFINED_OPERATOR_NAMES,
    PhotoOperators,
    bounded,
    check_fields,
    clarity_taps,
    operator_names,
)
from sagim_tf.utils.errors import InputError


def _photo(seed=0, h=24, w=32):
    """A smooth photo-like image with dark, mid and bright areas, plus exact 0 and 1 pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    base = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx * yy], -1)
    img = np.clip(base + 0.05 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)
    img[0, 0] = 0.0
    img[-1, -1] = 1.0
    return img[None]


def _fields(name=None, value=0.0, h=24, w=32):
    """Fields with one operator set: G's seven channels, or eight for clarity."""
    channels = NUM_REFINED_OPERATORS if name == "clarity" else NUM_OPERATORS
    f = np.zeros((1, h, w, channels), np.float32)
    if name is not None:
        f[..., REFINED_OPERATOR_NAMES.index(name)] = value
    return f


def _apply(img, fields):
    return np.asarray(PhotoOperators()([img, fields]))


def test_zero_fields_return_the_photo_bit_for_bit():
    img = _photo()
    assert np.array_equal(_apply(img, _fields()), img)
    # coarse zero fields are resized first; still the identity
    assert np.array_equal(_apply(img, np.zeros((1, 3, 4, NUM_OPERATORS), np.float32)), img)
    # and with a clarity field
    assert np.array_equal(_apply(img, _fields("clarity", 0.0)), img)


def _luma(x):
    return (x * np.array(LUMA, np.float32)).sum(-1)


def _chroma(x):
    return np.abs(x - _luma(x)[..., None]).mean()


def _high_freq(x):
    return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()


def _mid_contrast(x):
    """Mean distance of each pixel from its neighbourhood's mean at clarity's scale."""
    sigma = CLARITY_SCALE * min(x.shape[1:3])
    return np.abs(x[0] - cv2.GaussianBlur(x[0], (0, 0), sigma)).mean()


# name -> a statistic that must rise with the operator's parameter
MONOTONE = {
    "temperature": lambda x: (x[..., 0] - x[..., 2]).mean(),
    "tint": lambda x: -x[..., 1].mean() + 0.5 * (x[..., 0] + x[..., 2]).mean(),
    "exposure": lambda x: x.mean(),
    "contrast": lambda x: _luma(x).std(),
    "tone": lambda x: x.mean(),
    "saturation": _chroma,
    "detail": _high_freq,
    "clarity": _mid_contrast,
}


@pytest.mark.parametrize("name", REFINED_OPERATOR_NAMES)
def test_each_operator_is_monotone_in_its_parameter(name):
    img = _photo()
    values = [-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0]
    stats = [MONOTONE[name](_apply(img, _fields(name, v))) for v in values]
    assert all(b > a for a, b in zip(stats, stats[1:])), (name, stats)


@pytest.mark.parametrize("name", REFINED_OPERATOR_NAMES)
def test_settings_are_bounded_and_outputs_stay_in_range(name):
    img = _photo()
    huge = _apply(img, _fields(name, 1e4))
    assert np.isfinite(huge).all() and huge.min() >= 0.0 and huge.max() <= 1.0
    # saturated tanh: a field of 1e4 and one of 50 give the same edit
    assert np.array_equal(huge, _apply(img, _fields(name, 50.0)))
    settings = np.asarray(bounded(_fields(name, 1e4)))[0, 0, 0]
    limit = OPERATOR_RANGES[name]
    assert np.isclose(settings[REFINED_OPERATOR_NAMES.index(name)], limit, rtol=1e-6)  # f32 tanh


def test_white_balance_keeps_brightness():
    img = np.full((1, 8, 8, 3), 0.4, np.float32)
    for name in ("temperature", "tint"):
        out = _apply(img, _fields(name, 1.0, 8, 8))
        # a grey pixel's luma is kept: gains are divided by their luma-weighted mean;
        # 1e-6 absorbs float32 rounding of exp and the division
        np.testing.assert_allclose(_luma(out), _luma(img), atol=1e-6)
        assert not np.allclose(out, img)


def test_exposure_darkens_by_its_gain_and_brightens_without_clipping():
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    img = np.tile(ramp[None, None, :, None], (1, 8, 1, 3))  # (1, 8, 101, 3) greys, 0 to 1
    half = np.arctanh(0.5)  # tanh -> 0.5 EV with the 1 EV range
    dark = _apply(img, _fields("exposure", -half, 8, 101))
    np.testing.assert_allclose(dark, img * 2**-0.5, rtol=1e-5)  # float32 pow and tanh rounding
    bright = _apply(img, _fields("exposure", half, 8, 101))[0, 0, :, 0]
    gain = 2**0.5
    # the gain's slope in the shadows, white kept white, and no two greys merged
    np.testing.assert_allclose(bright, gain * ramp / (1 + (gain - 1) * ramp), rtol=1e-5)
    assert bright[1] / ramp[1] > 0.99 * gain and bright[-1] == 1.0
    assert np.all(np.diff(bright) > 0)


def test_contrast_is_an_s_curve_through_black_mid_grey_and_white():
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    img = np.tile(ramp[None, None, :, None], (1, 8, 1, 3))  # the blur needs a few rows
    for value in (-50.0, -0.5, 0.5, 50.0):
        out = _apply(img, _fields("contrast", value, 8, 101))[0, 0, :, 0]
        # 0, 1/2 and 1 are fixed points of the cubic (float32 rounding of its terms)
        np.testing.assert_allclose(out[[0, 50, 100]], [0.0, 0.5, 1.0], atol=1e-6)
        assert np.all(np.diff(out) > 0)  # monotone over the whole range: nothing clipped
        slope = (out[51] - out[49]) / (ramp[51] - ramp[49])
        expected = 2 ** (OPERATOR_RANGES["contrast"] * np.tanh(value))
        # a central difference over 0.02 of a cubic: exact up to float32 rounding / 0.02
        np.testing.assert_allclose(slope, expected, rtol=1e-3)


def test_gains_and_contrast_clip_nothing_before_the_end():
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    img = np.tile(ramp[None, None, :, None], (1, 8, 1, 3))  # the blur needs a few rows
    fields = _fields(None, 0.0, 8, 256)
    fields[..., OPERATOR_NAMES.index("exposure")] = 50.0  # +1 EV
    fields[..., OPERATOR_NAMES.index("contrast")] = 50.0  # steepest S-curve
    out = _apply(img, fields)[0, 0, :, 0]
    assert np.all(np.diff(out) > 0) and out[-1] == 1.0  # every grey level stays distinct


@pytest.mark.parametrize("channels", [NUM_OPERATORS, NUM_REFINED_OPERATORS])
@pytest.mark.parametrize("value", [0.0, 0.7, -3.0, 30.0])
def test_gradients_are_finite(value, channels):
    img = tf.constant(_photo())
    fields = tf.Variable(np.full((1, 6, 8, channels), value, np.float32))
    layer = PhotoOperators()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer([img, fields]) - 0.5))
    grad = tape.gradient(loss, fields).numpy()
    assert np.isfinite(grad).all()
    if abs(value) < 5:
        assert np.abs(grad).max() > 0  # the fields move the output


def test_coarse_fields_are_applied_at_the_photos_resolution():
    img = _photo(h=48, w=64)
    coarse = np.zeros((1, 6, 8, NUM_OPERATORS), np.float32)
    coarse[:, :, :4, OPERATOR_NAMES.index("exposure")] = 1.0  # left half brighter
    out = _apply(img, coarse)
    assert out.shape == img.shape
    assert out[:, :, :24].mean() > img[:, :, :24].mean() + 0.05
    # the right quarter is far from the bilinear ramp, so it is untouched
    np.testing.assert_array_equal(out[:, :, 48:], img[:, :, 48:])


def test_serialization_round_trip():
    layer = PhotoOperators(detail_sigma=2.0)
    clone = PhotoOperators.from_config(layer.get_config())
    assert clone.detail_sigma == 2.0
    img = _photo()
    f = _fields("detail", 1.0)
    np.testing.assert_array_equal(np.asarray(clone([img, f])), np.asarray(layer([img, f])))


def test_clarity_works_at_a_twentieth_of_the_short_side():
    for h, w in [(72, 96), (192, 256), (300, 120)]:
        taps = clarity_taps(h, w)
        r = np.arange(len(taps)) - len(taps) // 2
        sigma = CLARITY_SCALE * min(h, w)
        assert taps.sum() == pytest.approx(1.0, abs=1e-6)  # float32 taps
        # cut at 3 sigma, a Gaussian keeps 97.3% of its variance
        assert np.sqrt((taps * r**2).sum()) == pytest.approx(0.973**0.5 * sigma, rel=0.01)
    # never longer than reflect padding allows
    assert len(clarity_taps(8, 4000)) <= 2 * 7 + 1
    with pytest.raises(ValueError, match="2x2"):
        clarity_taps(1, 50)


def test_clarity_raises_texture_and_leaves_strong_edges_without_a_halo():
    rng = np.random.default_rng(2)
    img = np.full((1, 60, 80, 3), 0.25, np.float32)
    img[:, :, 40:] = 0.75  # a strong edge down the middle
    texture = 0.02 * np.sin(np.arange(80) * 0.9)[None, None, :, None]  # faint, fine
    img[:, 20:40] += texture[:, :, :]  # on a band across both sides
    img += rng.normal(0, 0.002, img.shape).astype(np.float32)
    out = _apply(img, _fields("clarity", 50.0, 60, 80))  # clarity +1: twice the texture
    band = slice(22, 38)
    gain = np.std(np.diff(out[0, band, 5:35, 0], axis=1)) / np.std(
        np.diff(img[0, band, 5:35, 0], axis=1)
    )
    assert gain > 1.5, gain
    # beside the edge, away from the texture, the rim clarity draws is a quarter of a
    # Gaussian base's (0.05 against 0.22 measured; 0.3x leaves room for float32 rounding)
    rows = slice(45, 60)
    rim = np.abs(out[0, rows, 30:50] - img[0, rows, 30:50]).max()
    gaussian = img + (img - cv2.GaussianBlur(img[0], (0, 0), CLARITY_SCALE * 60)[None])
    gaussian_rim = np.abs(gaussian[0, rows, 30:50] - img[0, rows, 30:50]).max()
    assert gaussian_rim > 0.15 and rim < 0.3 * gaussian_rim, (rim, gaussian_rim)


def test_seven_fields_are_eight_with_no_clarity():
    img = _photo()
    fields = np.random.default_rng(1).normal(0, 0.7, (1, 24, 32, NUM_OPERATORS)).astype("f4")
    eight = np.concatenate([fields, np.zeros_like(fields[..., :1])], axis=-1)
    assert np.array_equal(_apply(img, eight), _apply(img, fields))
    assert operator_names(7) == OPERATOR_NAMES and operator_names(8)[-1] == "clarity"
    with pytest.raises(ValueError, match="7 channels .* or 8 .* got 5"):
        operator_names(5)


def test_every_reader_of_fields_checks_them_the_same_way():
    """Applying, explaining and refining share one check: 7 or 8 channels, every value finite."""
    from sagim_tf.inference.explain import operator_settings
    from sagim_tf.models.generate import apply_fields

    img = _photo()[0]
    good = np.zeros((3, 4, NUM_OPERATORS), np.float64)
    checked = check_fields(good)
    assert checked.dtype == np.float32 and checked.shape == good.shape
    assert check_fields(np.zeros((3, 4, NUM_REFINED_OPERATORS))).shape[-1] == 8
    nan = good.copy()
    nan[1, 2, 3] = np.nan
    for read in (check_fields, operator_settings, lambda f: apply_fields(img, f)):
        with pytest.raises(InputError, match=r"need 7 or 8 channels.*got shape \(3, 4, 5\)"):
            read(good[..., :5])
        with pytest.raises(InputError, match="channels"):
            read(good[0])  # (w, 7): a plane, not a grid of settings
        with pytest.raises(InputError, match="NaN or infinite"):
            read(nan)
    with pytest.raises(InputError, match="apply_fields: the fields contain NaN"):
        apply_fields(img, np.full((3, 4, 7), np.inf))


@pytest.mark.parametrize("size", [(72, 96), (5, 40), (192, 256)])
def test_clarity_filters_by_matrices_as_the_depthwise_blur_does(size):
    from sagim_tf.layers.gaussian_blur import separable_blur
    from sagim_tf.layers.photo_operators import matrix_blur

    h, w = size
    taps = clarity_taps(h, w)
    x = tf.constant(np.random.default_rng(3).random((2, h, w, 1)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = matrix_blur(x, taps), separable_blur(x, taps)
        la, lb = tf.reduce_sum(a * a), tf.reduce_sum(b * b)
    # the same float32 sums in another order (up to 59 taps of values in [0, 1])
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(la, x), tape.gradient(lb, x), atol=1e-5)
