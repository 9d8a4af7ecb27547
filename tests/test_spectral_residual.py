"""The differentiable copy of the spectral-residual judge: the judge's maps, with gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data
from skimage.transform import resize

from sagim_tf.estimators import available_estimators, build_estimator
from sagim_tf.estimators.opencv_judges import OpenCVSaliencyJudge
from sagim_tf.estimators.spectral_residual import SpectralResidualSaliency
from sagim_tf.utils.errors import InputError


def _photos(names=("coffee", "chelsea", "astronaut", "rocket")):
    return np.stack([resize(getattr(data, n)(), (96, 128)).astype(np.float32) for n in names])


def test_maps_follow_the_opencv_judge_on_photographs():
    photos = _photos()
    ours = np.asarray(SpectralResidualSaliency()(photos))
    theirs = OpenCVSaliencyJudge("spectral-residual")(photos)
    assert ours.shape == theirs.shape == (4, 96, 128, 1)
    for a, b in zip(ours, theirs, strict=True):
        # 0.97-0.98 measured; the margin absorbs the two libraries' resizing and OpenCV's
        # rounding of the image to 8 bits, which the copy does not do
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.93
        # min-max scaled per image, as the judge's wrapper scales
        assert a.min() == 0.0 and a.max() == pytest.approx(1.0, abs=1e-6)  # float32 division


def test_a_map_singles_out_the_odd_patch_and_a_flat_image_gives_zeros():
    rng = np.random.default_rng(0)
    image = np.full((1, 64, 64, 3), 0.5, np.float32) + rng.normal(0, 0.01, (1, 64, 64, 3))
    image[0, 24:40, 40:56] = 0.9  # one bright square on a near-flat grey
    sal = np.asarray(SpectralResidualSaliency()(image.astype(np.float32)))[0, ..., 0]
    inside, outside = sal[24:40, 40:56].mean(), sal[:, :20].mean()
    assert inside > 3 * outside
    flat = np.asarray(SpectralResidualSaliency()(np.full((2, 20, 30, 3), 0.4, np.float32)))
    np.testing.assert_array_equal(flat, 0.0)


def test_gradients_reach_every_pixel_and_are_finite():
    x = tf.Variable(_photos(("coffee",))[:, ::2, ::2])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(SpectralResidualSaliency()(x)[:, 10:30, 10:40])
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    # the spectrum is global: a change anywhere moves the map inside the window
    assert np.abs(grad[:, :5, :5]).sum() > 0


def test_it_is_kept_off_the_estimator_specs_and_checks_its_input():
    # training or refining against it would make spectral residual a seen judge
    assert "spectral-residual" in available_estimators()
    assert build_estimator("spectral-residual").differentiable is False
    for bad in (0, 3, 2.5, True, "64"):
        with pytest.raises(InputError, match="side"):
            SpectralResidualSaliency(side=bad)
    with pytest.raises(InputError, match=r"\(B, H, W, 3\)"):
        SpectralResidualSaliency()(np.zeros((1, 8, 8, 1), np.float32))
    copy = SpectralResidualSaliency.from_config(SpectralResidualSaliency(side=32).get_config())
    assert copy.side == 32 and not copy.trainable and not copy.weights
    assert isinstance(copy, keras.Model)
