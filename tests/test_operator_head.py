"""G's operator head: zero at start, fields applied at any resolution equal G's own output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sagim_tf.inference.editor import Editor, edit_image, resize_image, resize_map
from sagim_tf.layers.photo_operators import NUM_OPERATORS, OPERATOR_NAMES
from sagim_tf.models.generate import apply_fields, predict_fields, scale_fields
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.utils.errors import ConfigError
from sagim_tf.utils.images import small_copy
from sagim_tf.utils.io import to_uint8
from tests.helpers import nudge_operator_head, tiny_estimator, tiny_operator_g
from tests.test_case import run_model_saving_test, run_serialization_test

_g = tiny_operator_g


def _inputs(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx], -1)
    img = np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    guide = np.zeros((h, w, 1), np.float32)
    guide[h // 4 : h // 2, w // 4 : w // 2] = 1.0
    return img, guide


def test_an_untrained_operator_head_returns_the_photo_exactly():
    img, guide = _inputs()
    g = _g()
    assert np.array_equal(np.asarray(g([img[None], guide[None]]))[0], img)
    assert not np.any(predict_fields(g, img, guide))


def test_serialization_and_saving():
    img, guide = _inputs(32, 32)
    kwargs = dict(
        base_filters=4,
        depth=2,
        num_residual_blocks=1,
        head="operators",
        field_stride=16,
        work_size=64,
    )
    run_serialization_test(SaGIMGenerator, kwargs)
    run_model_saving_test(SaGIMGenerator, kwargs, [img[None], guide[None]])


def test_bad_head_options_are_refused():
    with pytest.raises(ValueError, match="head"):
        SaGIMGenerator(head="lut")
    with pytest.raises(ValueError, match="power of 2"):
        SaGIMGenerator(head="operators", field_stride=6)


@pytest.mark.parametrize("strip_rows", [512, 7])
def test_applying_the_fields_equals_gs_own_output(strip_rows):
    img, guide = _inputs(45, 61)  # not a multiple of the field stride
    g = nudge_operator_head(_g())
    own = np.asarray(g([img[None], guide[None]]))[0]
    fields = predict_fields(g, img, guide)
    assert fields.shape == (45, 61, NUM_OPERATORS) and np.abs(fields).max() > 0.1
    applied = apply_fields(img, fields, strip_rows=strip_rows)
    # the same operators on the same fields; only the compiled graph's float32 rounding differs
    np.testing.assert_allclose(applied, own, atol=2e-6)
    assert np.abs(applied - img).max() > 0.01


def test_fields_from_a_small_copy_edit_the_full_size_photo_smoothly():
    g = nudge_operator_head(_g())
    small, guide = _inputs(24, 32)
    fields = predict_fields(g, small, guide).copy()
    # the detail operator acts at G's scale (its own test below); the others per pixel
    fields[..., OPERATOR_NAMES.index("detail")] = 0.0
    big, _ = _inputs(96, 128, seed=2)
    out = apply_fields(big, fields, strip_rows=40)
    assert out.shape == big.shape
    # the raw fields resized to full size first give the same edit up to interpolation
    # order: coefficients interpolated vs fields interpolated differ at second order on
    # smooth fields (1e-5 here; 1e-3 is still far below one 8-bit level, 4e-3)
    full = cv2.resize(fields, (128, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out, apply_fields(big, full), atol=1e-3)


def _first_four(x, c):
    """Gains with highlight roll-off, the contrast S-curve, tone and saturation, written out
    from their definitions (photo_operators' table) under coefficients ``c``."""
    luma = np.float32([0.299, 0.587, 0.114])
    gains = c[..., 0:3]
    x = gains * x / (1.0 + np.maximum((gains * luma).sum(-1, keepdims=True) - 1.0, 0.0) * x)
    x = x + c[..., 3:4] * x * (1.0 - x) * (2.0 * x - 1.0)
    x = x + c[..., 4:5] * x * (1.0 - x)
    return x + (x - (x * luma).sum(-1, keepdims=True)) * c[..., 5:6]


@pytest.mark.parametrize("strip_rows", [1, 5, 48, 512])
def test_the_strip_apply_is_the_2d_resize_of_the_coefficients_then_the_operators(strip_rows):
    """apply_fields (coefficients across once, down per strip, NumPy/OpenCV operators)
    against the plain definition: OpenCV's 2-D resize of the first six coefficients, the
    operators in TensorFlow on the whole photo, and G's detail change made on the working
    copy and resized the same way."""
    from sagim_tf.layers.gaussian_blur import GaussianBlur
    from sagim_tf.layers.photo_operators import (
        DETAIL_KERNEL_SIZE,
        DETAIL_SIGMA,
        coefficients,
    )

    rng = np.random.default_rng(strip_rows)
    fields = rng.normal(0, 1, (7, 9, NUM_OPERATORS)).astype(np.float32)
    big, _ = _inputs(61, 83, seed=3)
    small = cv2.resize(big, (9, 7), interpolation=cv2.INTER_AREA)
    c = np.asarray(coefficients(fields[None]))[0]
    blur = GaussianBlur(DETAIL_KERNEL_SIZE, DETAIL_SIGMA)
    # G's detail change at its own size, d (x - blur(x)) of x after the first five
    # operators, written out from their definitions (photo_operators' table)
    x = _first_four(small, c)
    change = c[..., 6:7] * (x - np.asarray(blur(x[None].astype(np.float32)))[0])
    no_detail = c.copy()
    no_detail[..., 6] = 0.0
    coef = cv2.resize(no_detail, (83, 61))
    # the photo's own edit without detail, unclipped: apply_coefficients clips at its end
    big_x = _first_four(big, coef)
    want = np.clip(big_x + cv2.resize(change.astype(np.float32), (83, 61)), 0.0, 1.0)
    got = apply_fields(big, fields, strip_rows=strip_rows, work_image=small)
    # float32 rounding only: interpolation order (across, then down), blur and luma sums
    np.testing.assert_allclose(got, want, atol=1e-5)
    # without a working copy, apply_fields makes it with the same area resize
    np.testing.assert_array_equal(apply_fields(big, fields, strip_rows=strip_rows), got)


def _smooth_fields(h, w, channels, seed):
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 1, (max(2, h // 8), max(2, w // 8), channels)).astype(np.float32)
    return cv2.resize(raw, (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("strip_rows", [5, 512])
def test_refined_fields_with_clarity_apply_as_the_layer_does(strip_rows):
    """Eight fields (refinement's, clarity last) at the photo's own size: apply_fields
    against the keras.ops layer; clarity's change is made on the whole image first."""
    from sagim_tf.layers import PhotoOperators

    img, _ = _inputs(45, 61)
    fields = _smooth_fields(45, 61, 8, seed=1)
    own = np.asarray(PhotoOperators()([img[None], fields[None]]))[0]
    applied = apply_fields(img, fields, strip_rows=strip_rows)
    # the same operators in NumPy/OpenCV and in TensorFlow: float32 rounding of two blurs
    np.testing.assert_allclose(applied, own, atol=2e-6)
    seven = apply_fields(img, fields[..., :7], strip_rows=strip_rows)
    assert np.abs(applied - seven).max() > 0.01  # clarity did something


def test_clarity_is_made_on_the_working_copy_and_interpolated():
    """At another size, clarity's change is the one made on the working copy (after the
    other seven operators), resized to the photo like the detail change."""
    from sagim_tf.layers import PhotoOperators

    big, _ = _inputs(96, 128, seed=2)
    small = cv2.resize(big, (32, 24), interpolation=cv2.INTER_AREA)
    fields = _smooth_fields(24, 32, 8, seed=2)
    with_clarity = apply_fields(big, fields, work_image=small)
    without = apply_fields(big, fields[..., :7], work_image=small)
    # on the working copy: the layer's edit with and without clarity, before the clip
    layer = PhotoOperators()
    unclipped = fields.copy()
    small_with = np.asarray(layer([small[None], unclipped[None]]))[0]
    small_without = np.asarray(layer([small[None], unclipped[None, ..., :7]]))[0]
    inside = (small_with > 0.02) & (small_with < 0.98) & (small_without > 0.02)
    inside &= small_without < 0.98
    change = np.where(inside, small_with - small_without, 0.0).astype(np.float32)
    up = cv2.resize(change, (128, 96), interpolation=cv2.INTER_LINEAR)
    mask = (with_clarity > 0.02) & (with_clarity < 0.98) & (without > 0.02) & (without < 0.98)
    mask &= cv2.resize(inside.astype(np.uint8), (128, 96), interpolation=cv2.INTER_NEAREST) > 0
    # away from the clip, the photo's change is the copy's change interpolated (bilinear
    # weights of a clipped neighbour aside: 1e-3 is a quarter of an 8-bit level)
    np.testing.assert_allclose((with_clarity - without)[mask], up[mask], atol=1e-3)
    assert np.abs(up).max() > 0.01


def test_the_detail_operator_acts_at_the_scale_g_saw_not_on_the_photos_noise():
    """Sharpening fields from a 32x24 copy applied to a 4x larger photo of a flat, noisy
    sky: the detail change is G's, interpolated, so the pixel noise is not amplified (a
    1.5-pixel blur at the photo's size would have sharpened only the noise)."""
    rng = np.random.default_rng(9)
    sky = np.clip(0.4 + rng.normal(0, 0.02, (96, 128, 3)), 0, 1).astype(np.float32)
    fields = np.zeros((24, 32, NUM_OPERATORS), np.float32)
    fields[..., OPERATOR_NAMES.index("detail")] = 3.0  # tanh(3) ~ 1: the strongest sharpening
    out = apply_fields(sky, fields)
    # the small copy's area resize averages 16 pixels, so its high-pass, times the gain,
    # is under a tenth of the noise (0.07 measured); the same gain on the photo's own
    # pixels adds about half the noise again (0.47 measured): a 3x margin each way
    noise = np.std(sky - sky.mean())
    assert np.std(out - sky) < 0.15 * noise
    fine = np.zeros((96, 128, NUM_OPERATORS), np.float32)
    fine[..., OPERATOR_NAMES.index("detail")] = 3.0
    assert np.std(apply_fields(sky, fine) - sky) > 0.3 * noise
    with pytest.raises(ConfigError, match="work_image"):
        apply_fields(sky, fields, work_image=sky)


def test_apply_fields_without_a_working_copy_makes_the_editors():
    """Without ``work_image``, apply_fields shrinks the photo as the editor does for G
    (:func:`small_copy`, read a strip at a time for uint8), so both give one edit; and a
    uint8 photo's small copy is its float copy's area resize."""
    rng = np.random.default_rng(4)
    photo = (rng.random((150, 200, 3)) * 255).astype(np.uint8)  # 150 rows: 3 strips of 64
    fields = np.zeros((30, 40, NUM_OPERATORS + 1), np.float32)
    fields[..., OPERATOR_NAMES.index("detail")] = 2.0
    fields[..., -1] = 1.0  # clarity: made on the working copy too
    small = small_copy(photo, 30, 40)
    float_small = resize_image(photo.astype(np.float32) / 255.0, 30, 40)
    # separable area resize, across then down per strip: float32 rounding only
    np.testing.assert_allclose(small, float_small, atol=1e-6)
    np.testing.assert_array_equal(
        apply_fields(photo, fields), apply_fields(photo, fields, work_image=small)
    )


def test_a_uint8_photo_gives_the_float_edit_rounded():
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    fields = rng.normal(0, 1, (6, 9, NUM_OPERATORS)).astype(np.float32)
    out = apply_fields(photo, fields, strip_rows=16)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    np.testing.assert_array_equal(out, to_uint8(apply_fields(photo / np.float32(255), fields)))
    zero = apply_fields(photo, np.zeros_like(fields))
    assert zero.dtype == np.uint8 and np.array_equal(zero, photo)
    with pytest.raises(ConfigError, match="strip_rows"):
        apply_fields(photo, fields, strip_rows=0)


def test_edit_image_of_a_uint8_photo_is_the_float_edit_rounded():
    img, _ = _inputs(120, 168)
    photo = to_uint8(img)
    editor = Editor(nudge_operator_head(_g(work_size=48)), tiny_estimator())
    box = [(20, 20, 80, 70)]
    as_uint8 = edit_image(editor, photo, emphasize=box)
    as_float = edit_image(editor, photo / np.float32(255), emphasize=box)
    assert as_uint8["edited"].dtype == np.uint8
    np.testing.assert_array_equal(as_uint8["edited"], to_uint8(as_float["edited"]))
    np.testing.assert_array_equal(as_uint8["saliency_after"], as_float["saliency_after"])
    np.testing.assert_array_equal(as_uint8["fields"], as_float["fields"])


def test_the_map_after_is_es_map_of_gs_own_edit_and_maps_are_made_when_read():
    img, _ = _inputs(120, 168)
    editor = Editor(nudge_operator_head(_g(work_size=48)), tiny_estimator())
    out = edit_image(editor, img, emphasize=[(20, 20, 80, 70)])
    names = ["edited", "guidance", "target", "saliency_before", "saliency_after", "fields"]
    assert list(out) == names
    assert "made when read: [guidance, target, saliency_before, saliency_after]" in repr(out)
    small = resize_image(img, 34, 48)
    after = editor.saliency(apply_fields(small, out["fields"]))
    np.testing.assert_array_equal(out["saliency_after"], resize_map(after, 120, 168))
    assert out["guidance"] is out["target"] and "made when read: [saliency_before]" in repr(out)
    plain = dict(out)
    assert plain["saliency_before"].shape == (120, 168, 1) and len(plain) == len(out) == 6
    out["note"] = "mine"
    del out["target"]
    assert list(out)[-1] == "note" and "target" not in out and out.get("target") is None
    with pytest.raises(KeyError):
        out["nothing"]


def test_strength_scales_the_settings_and_zero_is_the_photo():
    fields = np.random.default_rng(0).normal(0, 1, (6, 8, NUM_OPERATORS)).astype(np.float32)
    assert not np.any(scale_fields(fields, 0.0))
    np.testing.assert_array_equal(scale_fields(fields, 1.0), fields)
    np.testing.assert_allclose(
        np.tanh(scale_fields(fields, 0.5)), 0.5 * np.tanh(fields), atol=1e-6
    )  # float32 tanh/arctanh round trip


def test_edit_image_with_the_operator_head(caplog):
    img, _ = _inputs(120, 168)
    g = nudge_operator_head(_g(work_size=48))
    editor = Editor(g, tiny_estimator())
    with caplog.at_level("INFO", logger="sagim_tf.inference.editor"):
        out = edit_image(editor, img, emphasize=[(20, 20, 80, 70)], strength=1.0)
    assert "G runs at 48x34" in caplog.text
    assert out["edited"].shape == img.shape and out["fields"].shape == (34, 48, NUM_OPERATORS)
    assert out["saliency_before"].shape == (120, 168, 1) and out["guidance"].shape == (120, 168, 1)
    zero = edit_image(editor, img, emphasize=[(20, 20, 80, 70)], strength=0.0)
    assert np.array_equal(zero["edited"], img)  # strength 0: the photo, bit for bit
    with pytest.raises(ConfigError):
        predict_fields(
            SaGIMGenerator(base_filters=4, depth=1, num_residual_blocks=0), img, img[..., :1]
        )


@pytest.mark.parametrize("factor", [1, 2, 3, 8])
def test_bilinear_upsample_matches_tensorflows_resize_on_dynamic_shapes(factor):
    import tensorflow as tf

    from sagim_tf.layers import BilinearUpsample

    layer = BilinearUpsample(factor)
    step = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 7))])
    x = np.random.default_rng(factor).random((2, 3, 5, 7)).astype(np.float32)
    want = tf.image.resize(x, (3 * factor, 5 * factor), "bilinear").numpy()
    # two float32 lerps against TF's kernel: a few ulps
    np.testing.assert_allclose(step(x).numpy(), want, atol=1e-6)
    run_serialization_test(BilinearUpsample, {"factor": factor})


def test_the_config_builds_an_operator_head_at_the_training_size():
    from sagim_tf.training.config import config_from_dict
    from sagim_tf.training.run import build_model

    cfg = config_from_dict(
        {
            "estimator": "itti-koch",
            "data": {"image_size": {"height": 24, "width": 40}},
            "generator": {
                "base_filters": 4,
                "depth": 2,
                "num_residual_blocks": 0,
                "head": "operators",
                "field_stride": 4,
            },
            "features": {"layers": ["block1_conv1"]},
            "losses": {"color_kernel_size": 5},
        }
    )
    g = build_model(cfg).generator
    assert (g.head, g.field_stride, g.work_size) == ("operators", 4, 40)
    for bad, match in (({"head": "lut"}, "generator.head"), ({"field_stride": 6}, "power of 2")):
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"generator": bad})
