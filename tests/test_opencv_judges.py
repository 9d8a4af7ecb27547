"""OpenCV contrib judges: same call shape as every estimator, evaluation only."""

import numpy as np
import pytest

from sagim_tf.estimators.opencv_judges import OpenCVSaliencyJudge
from sagim_tf.utils.errors import ConfigError, InputError

METHODS = ["spectral-residual", "fine-grained"]


def _disc_image(cx=40, cy=30, h=96, w=128, r=12):
    img = np.full((h, w, 3), 0.5, np.float32)
    yy, xx = np.mgrid[:h, :w]
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    img[mask] = (1.0, 0.0, 0.0)
    return img, mask


@pytest.mark.parametrize("method", METHODS)
def test_call_shape_range_and_flag(method):
    judge = OpenCVSaliencyJudge(method)
    x = np.random.default_rng(0).random((3, 50, 70, 3), dtype=np.float32)
    y = judge(x)
    assert y.shape == (3, 50, 70, 1) and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert judge.differentiable is False and judge.trainable is False
    assert judge(x[0]).shape == (50, 70, 1)


@pytest.mark.parametrize("method", METHODS)
def test_disc_scores_higher_than_background(method):
    img, mask = _disc_image()
    s = OpenCVSaliencyJudge(method)(img[None])[0, ..., 0]
    ring = np.zeros_like(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    ring = (xx - 40) ** 2 + (yy - 30) ** 2 < 20**2
    assert s[ring].mean() > s[~ring].mean()


@pytest.mark.parametrize("method", METHODS)
def test_uniform_image_is_all_zero(method):
    y = OpenCVSaliencyJudge(method)(np.full((1, 40, 60, 3), 0.4, np.float32))
    assert np.isfinite(y).all() and y.max() == 0.0


def test_accepts_tensors():
    import tensorflow as tf

    x = tf.random.uniform((2, 32, 48, 3))
    assert OpenCVSaliencyJudge("spectral-residual")(x).shape == (2, 32, 48, 1)


def test_errors():
    with pytest.raises(ConfigError, match="unknown OpenCV"):
        OpenCVSaliencyJudge("deepgaze")
    with pytest.raises(InputError, match=r"expected images \(B, H, W, 3\)"):
        OpenCVSaliencyJudge("fine-grained")(np.zeros((2, 8, 8, 4), np.float32))
