"""The fixed operator-rule baseline."""

from __future__ import annotations

import numpy as np
import pytest

from sagim_tf.baselines.operator_rule import operator_rule
from sagim_tf.evaluation.realism import non_affine
from sagim_tf.utils.errors import InputError


def _scene():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:80] / np.array([60, 80])[:, None, None]
    img = np.stack([0.3 + 0.3 * xx, 0.35 + 0.2 * yy, 0.4 - 0.2 * xx], -1)
    img = np.clip(img + 0.02 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    mask = np.zeros((60, 80), bool)
    mask[15:45, 20:50] = True
    return img, mask


def test_brightens_and_saturates_inside_and_dims_outside():
    img, mask = _scene()
    out = operator_rule(img, mask)
    assert out.shape == img.shape and out.dtype == np.float32
    core = np.zeros_like(mask)
    core[22:38, 28:42] = True
    far = np.zeros_like(mask)
    far[:, 70:] = True
    assert out[core].mean() > img[core].mean() + 0.05
    assert out[far].mean() < img[far].mean() - 0.05
    chroma = lambda x: np.abs(x - x.mean(-1, keepdims=True)).mean()  # noqa: E731
    assert chroma(out[core]) > chroma(img[core]) and chroma(out[far]) < chroma(img[far])


def test_identity_settings_return_the_image():
    img, mask = _scene()
    same = {"ev": 0.0, "saturation": 1.0, "contrast": 1.0}
    out = operator_rule(img, mask, emphasize=same, deemphasize=same)
    # exp2(log2(1)) is exactly 1 and every operator adds x * 0: only the float32 cast remains
    np.testing.assert_array_equal(out, img)


def test_the_edit_is_photographic():
    img, mask = _scene()
    assert non_affine(img, operator_rule(img, mask))["share"] < 0.05


def test_bad_settings_are_named():
    img, mask = _scene()
    with pytest.raises(InputError, match="emphasize: unknown setting 'gamma'"):
        operator_rule(img, mask, emphasize={"gamma": 2})
    with pytest.raises(InputError, match="deemphasize.saturation"):
        operator_rule(img, mask, deemphasize={"saturation": -1})
    with pytest.raises(InputError, match="feather"):
        operator_rule(img, mask, feather=float("nan"))
