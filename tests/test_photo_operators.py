"""The photographic operators: identity at zero, monotone, bounded, finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.layers.photo_operators import (
    LUMA,
    NUM_OPERATORS,
    OPERATOR_NAMES,
    OPERATOR_RANGES,
    PhotoOperators,
    bounded,
)


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
    f = np.zeros((1, h, w, NUM_OPERATORS), np.float32)
    if name is not None:
        f[..., OPERATOR_NAMES.index(name)] = value
    return f


def _apply(img, fields):
    return np.asarray(PhotoOperators()([img, fields]))


def test_zero_fields_return_the_photo_bit_for_bit():
    img = _photo()
    assert np.array_equal(_apply(img, _fields()), img)
    # coarse zero fields are resized first; still the identity
    assert np.array_equal(_apply(img, np.zeros((1, 3, 4, NUM_OPERATORS), np.float32)), img)


def _luma(x):
    return (x * np.array(LUMA, np.float32)).sum(-1)


def _chroma(x):
    return np.abs(x - _luma(x)[..., None]).mean()


def _high_freq(x):
    return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()


# name -> a statistic that must rise with the operator's parameter
MONOTONE = {
    "temperature": lambda x: (x[..., 0] - x[..., 2]).mean(),
    "tint": lambda x: -x[..., 1].mean() + 0.5 * (x[..., 0] + x[..., 2]).mean(),
    "exposure": lambda x: x.mean(),
    "contrast": lambda x: _luma(x).std(),
    "tone": lambda x: x.mean(),
    "saturation": _chroma,
    "detail": _high_freq,
}


@pytest.mark.parametrize("name", OPERATOR_NAMES)
def test_each_operator_is_monotone_in_its_parameter(name):
    img = _photo()
    values = [-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0]
    stats = [MONOTONE[name](_apply(img, _fields(name, v))) for v in values]
    assert all(b > a for a, b in zip(stats, stats[1:])), (name, stats)


@pytest.mark.parametrize("name", OPERATOR_NAMES)
def test_settings_are_bounded_and_outputs_stay_in_range(name):
    img = _photo()
    huge = _apply(img, _fields(name, 1e4))
    assert np.isfinite(huge).all() and huge.min() >= 0.0 and huge.max() <= 1.0
    # saturated tanh: a field of 1e4 and one of 50 give the same edit
    assert np.array_equal(huge, _apply(img, _fields(name, 50.0)))
    settings = np.asarray(bounded(_fields(name, 1e4)))[0, 0, 0]
    limit = OPERATOR_RANGES[name]
    assert np.isclose(settings[OPERATOR_NAMES.index(name)], limit, rtol=1e-6)  # float32 tanh(1e4)


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


@pytest.mark.parametrize("value", [0.0, 0.7, -3.0, 30.0])
def test_gradients_are_finite(value):
    img = tf.constant(_photo())
    fields = tf.Variable(np.full((1, 6, 8, NUM_OPERATORS), value, np.float32))
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
