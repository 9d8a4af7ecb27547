"""The guided filter that bends the operator head's fields to the photo's edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sagim_tf.layers import GuidedFilter, LumaSlice
from sagim_tf.models.generate import apply_fields, predict_fields
from sagim_tf.models.generator import SaGIMGenerator
from tests.helpers import TINY_OPERATOR_G, nudge_operator_head, tiny_operator_g
from tests.test_case import run_model_saving_test, run_serialization_test

LUMA = np.array([0.299, 0.587, 0.114])


def _box(x, r):
    """Mean over (2r+1)^2 windows clipped to the image (float64 reference)."""
    k = 2 * r + 1
    s = cv2.boxFilter(x, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
    n = cv2.boxFilter(
        np.ones(x.shape[:2]), -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    return s / (n if x.ndim == 2 else n[..., None])


def _reference(fields, image, r, eps):
    """He et al.'s guided filter in float64 NumPy, channel by channel."""
    guide = image @ LUMA
    mean_i = _box(guide, r)
    var_i = _box(guide * guide, r) - mean_i**2
    out = np.empty_like(fields)
    for c in range(fields.shape[-1]):
        p = fields[..., c]
        mean_p = _box(p, r)
        a = (_box(guide * p, r) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        out[..., c] = _box(a, r) * guide + _box(b, r)
    return out


def _edge_scene(h=32, w=48, edge=24, seed=0):
    """A dark left half and a bright right half, with mild noise."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 0.2)
    image[:, edge:] = 0.8
    return np.clip(image + 0.01 * rng.standard_normal(image.shape), 0, 1)


@pytest.mark.parametrize("radius,eps", [(1, 1e-2), (4, 1e-3), (9, 1e-2)])
def test_it_is_the_guided_filter(radius, eps):
    rng = np.random.default_rng(radius)
    image = rng.random((23, 37, 3))
    fields = rng.standard_normal((23, 37, 3))
    ours = np.asarray(
        GuidedFilter(radius, eps)([fields[None].astype("f4"), image[None].astype("f4")])
    )[0]
    # float32 box sums of squares against a float64 reference; a / (var + eps) amplifies
    # their rounding by up to 1 / eps = 1e3, so about 1e-7 * 1e3 * |p| ~ 1e-4
    np.testing.assert_allclose(ours, _reference(fields, image, radius, eps), atol=5e-4)


def test_zero_and_constant_fields_stay_as_they_are():
    image = np.random.default_rng(0).random((1, 20, 30, 3)).astype("f4")
    zero = np.zeros((1, 20, 30, 7), "f4")
    assert np.array_equal(np.asarray(GuidedFilter(5)([zero, image])), zero)  # exactly
    const = np.full((1, 20, 30, 2), 0.7, "f4")
    # a = cov / (var + eps) is float32 rounding of a zero covariance: ~1e-7 / 1e-2
    np.testing.assert_allclose(np.asarray(GuidedFilter(5)([const, image])), const, atol=1e-5)
    assert np.array_equal(np.asarray(GuidedFilter(0)([const, image])), const)


def test_a_change_spreads_less_across_the_edge_and_more_up_to_it():
    # an edge in the middle of a grid cell (x = 20, cells of 8 px), and a change on its
    # bright side as bilinear upsampling from the 8 px grid leaves it: a ramp across the edge
    image = _edge_scene(edge=20)
    fields = np.zeros((32, 48, 1))
    fields[:, 20:] = 1.0
    coarse = cv2.resize(fields, (6, 4), interpolation=cv2.INTER_AREA)
    ramp = cv2.resize(coarse, (48, 32), interpolation=cv2.INTER_LINEAR)[..., None]
    out = np.asarray(GuidedFilter(8)([ramp[None].astype("f4"), image[None].astype("f4")]))[0]
    # on the dark side, within a cell of the edge, a fifth less of the change (0.25 -> 0.20)
    assert out[:, 12:20].mean() < 0.85 * ramp[:, 12:20].mean()
    # on the bright side, up to 4 px from the edge, a fifth more (0.63 -> 0.75)
    assert out[:, 20:24].mean() > 1.15 * ramp[:, 20:24].mean()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="radius"):
        GuidedFilter(-1)
    with pytest.raises(ValueError, match="eps"):
        GuidedFilter(2, eps=0.0)


def test_layer_serialization_and_saving():
    rng = np.random.default_rng(3)
    inputs = [rng.random((2, 12, 16, 7)).astype("f4"), rng.random((2, 12, 16, 3)).astype("f4")]
    run_serialization_test(GuidedFilter, {"radius": 2, "eps": 1e-3})
    run_model_saving_test(GuidedFilter, {"radius": 2, "eps": 1e-3}, inputs)


#: The tiny operator-head G with guided fields of radius 4.
GUIDED_G = dict(TINY_OPERATOR_G, field_guide_radius=4)


def _g(**kw):
    return tiny_operator_g(**{**GUIDED_G, **kw})


def _inputs(h=40, w=56):
    image = _edge_scene(h, w, edge=w // 2).astype("f4")
    guide = np.zeros((h, w, 1), "f4")
    guide[h // 4 : h // 2, w // 4 : w // 2] = 1.0
    return image, guide


def test_an_untrained_guided_head_returns_the_photo_and_saves():
    image, guide = _inputs()
    g = _g()
    assert np.array_equal(np.asarray(g([image[None], guide[None]]))[0], image)
    run_serialization_test(SaGIMGenerator, GUIDED_G)
    run_model_saving_test(SaGIMGenerator, GUIDED_G, [image[None], guide[None]])
    with pytest.raises(ValueError, match="field_guide_radius"):
        _g(field_guide_radius=-2)


def test_a_file_without_the_setting_loads_as_plain_bilinear_fields():
    config = _g(field_guide_radius=0).get_config()
    del config["field_guide_radius"]
    g = SaGIMGenerator.from_config(config)
    assert g.field_guide_radius == 0
    assert g.get_layer("fields").__class__.__name__ == "CropToReference"


def test_the_guided_fields_are_what_g_applies():
    import keras

    image, guide = _inputs(45, 61)  # not a multiple of the field stride
    g = nudge_operator_head(_g())
    own = np.asarray(g([image[None], guide[None]]))[0]
    fields = predict_fields(g, image, guide)
    # the same operators on the same fields; only the compiled graph's float32 rounding
    np.testing.assert_allclose(apply_fields(image, fields), own, atol=2e-6)
    # G's "fields" are the guided filter of its bilinear fields, with the image as guide
    # (whose edge-following the layer tests above check)
    bilinear = keras.Model(g.inputs, g.get_layer("fields_step0").output)
    plain = np.asarray(bilinear([image[None], guide[None]]))
    guided = np.asarray(GuidedFilter(4)([plain, image[None]]))[0]
    # the same float32 ops, traced in G's graph or run eagerly
    np.testing.assert_allclose(fields, guided, atol=1e-5)
    assert np.abs(fields - plain[0]).max() > 1e-3  # and the filter did change them


# ---------------------------------------------------------------- the bilateral grid
def test_luma_slice_reads_each_pixels_brightness_band():
    image = np.zeros((1, 4, 6, 3), "f4")
    image[..., 3:, :] = 1.0  # black left, white right
    image[:, 0, 0] = 0.5  # one mid-grey pixel
    grid = np.zeros((1, 4, 6, 2 * 3), "f4")  # two fields, three bins each
    grid[..., 0:3] = [1.0, 2.0, 3.0]  # field 0: 1 in the shadows, 3 in the highlights
    grid[..., 3:6] = [-1.0, 0.0, 0.0]  # field 1: only the shadows
    out = np.asarray(LumaSlice(3)([grid, image]))[0]
    assert out.shape == (4, 6, 2)
    # luma of white is 0.299 + 0.587 + 0.114, 1 to float32 rounding
    np.testing.assert_allclose(out[1:, 3:, 0], 3.0, atol=1e-5)
    np.testing.assert_allclose(out[1:, :3, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0, 0], [2.0, 0.0], atol=1e-5)  # half way: the middle bin
    np.testing.assert_allclose(out[1:, :3, 1], -1.0, atol=1e-6)
    assert np.array_equal(np.asarray(LumaSlice(1)([grid[..., :2], image])), grid[..., :2])


def test_luma_slice_interpolates_linearly_between_bins():
    rng = np.random.default_rng(0)
    image = rng.random((1, 9, 9, 3)).astype("f4")
    grid = rng.standard_normal((1, 9, 9, 7 * 5)).astype("f4")
    luma = image[0] @ LUMA
    expected = np.stack(
        [
            np.array(
                [
                    np.interp(luma[y, x] * 4, np.arange(5), grid[0, y, x, k * 5 : k * 5 + 5])
                    for y in range(9)
                    for x in range(9)
                ]
            ).reshape(9, 9)
            for k in range(7)
        ],
        -1,
    )
    # float32 weights against float64 np.interp: a few ulps of |grid| ~ 3
    np.testing.assert_allclose(np.asarray(LumaSlice(5)([grid, image]))[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="bins"):
        LumaSlice(0)
    run_serialization_test(LumaSlice, {"bins": 5})
    run_model_saving_test(LumaSlice, {"bins": 5}, [grid, image])


def test_a_bilateral_grid_head_edits_dark_and_bright_parts_of_a_cell_apart():
    image, guide = _inputs(40, 56)
    g = _g(field_guide_radius=0, field_luma_bins=4)
    assert np.array_equal(np.asarray(g([image[None], guide[None]]))[0], image)  # zero init
    coarse = g.get_layer("fields_coarse")
    kernel, bias = coarse.get_weights()
    bias = np.zeros_like(bias)
    bias[2 * 4 + 3] = 1.0  # exposure (channel 2), brightest bin only
    coarse.set_weights([kernel, bias])
    fields = predict_fields(g, image, guide)[..., 2]
    dark, bright = image[..., 0] < 0.5, image[..., 0] > 0.5
    # dark pixels (luma ~0.2) sit between bins 0 and 1, far from bin 3
    assert np.abs(fields[dark]).max() < 1e-6 and fields[bright].min() > 0.3
    np.testing.assert_allclose(
        apply_fields(image, predict_fields(g, image, guide)),
        np.asarray(g([image[None], guide[None]]))[0],
        atol=2e-6,
    )
