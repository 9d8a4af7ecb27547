"""Itti-Koch-Niebur estimator: plausibility on a disc, gradients, sizes, range, saving."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagim_tf.estimators.itti_koch import IttiKochSaliency
from sagim_tf.utils.errors import ConfigError

H, W = 96, 128


def _disc(cx, cy, r=10, colour=(1.0, 0.0, 0.0)):
    img = np.full((H, W, 3), 0.5, np.float32)
    yy, xx = np.mgrid[:H, :W]
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    img[mask] = colour
    return img, mask


@pytest.fixture(scope="module")
def model():
    return IttiKochSaliency()


def test_disc_is_salient(model):
    img, mask = _disc(40, 30)
    s = np.asarray(model(img[None]))[0, ..., 0]
    assert s[mask].mean() > 3 * s[~mask].mean()
    peak = np.unravel_index(s.argmax(), s.shape)
    assert mask[peak] or np.hypot(peak[0] - 30, peak[1] - 40) < 14


def test_moving_the_disc_moves_the_peak(model):
    a, _ = _disc(30, 25)
    b, _ = _disc(95, 70)
    s = np.asarray(model(np.stack([a, b])))[..., 0]
    pa = np.unravel_index(s[0].argmax(), s[0].shape)
    pb = np.unravel_index(s[1].argmax(), s[1].shape)
    assert np.hypot(pa[0] - 25, pa[1] - 30) < 14
    assert np.hypot(pb[0] - 70, pb[1] - 95) < 14


def test_gradients_finite_and_nonzero(model):
    img, _ = _disc(64, 48)
    x = tf.Variable(img[None])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - 0.5))
    g = tape.gradient(loss, x).numpy()
    assert np.isfinite(g).all() and np.abs(g).max() > 0


def test_uniform_image_gives_zero_map_and_finite_gradient(model):
    x = tf.Variable(np.full((1, 40, 50, 3), 0.3, np.float32))
    with tf.GradientTape() as tape:
        y = model(x)
        loss = tf.reduce_mean(y)
    assert np.isfinite(y.numpy()).all() and float(tf.reduce_max(y)) == 0.0
    assert np.isfinite(tape.gradient(loss, x).numpy()).all()


@pytest.mark.parametrize("shape", [(1, 7, 5), (2, 33, 190), (1, 300, 41), (3, 192, 256)])
def test_any_size_and_range(model, shape):
    rng = np.random.default_rng(0)
    x = rng.random(shape + (3,), dtype=np.float32)
    y = np.asarray(model(x))
    assert y.shape == shape + (1,)
    assert y.min() >= 0.0 and y.max() <= 1.0 and y.max() > 0.5


def test_extreme_inputs_stay_in_range(model):
    x = np.stack([np.zeros((H, W, 3)), np.ones((H, W, 3)), _disc(64, 48, colour=(0, 0, 1))[0]])
    y = np.asarray(model(x.astype(np.float32)))
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0


def test_centre_bias_pulls_towards_centre():
    both = np.full((H, W, 3), 0.5, np.float32)
    both[_disc(20, 20)[1]] = (1, 0, 0)
    both[_disc(64, 48)[1]] = (1, 0, 0)
    plain = np.asarray(IttiKochSaliency()(both[None]))[0, ..., 0]
    biased = np.asarray(IttiKochSaliency(centre_bias=1.0)(both[None]))[0, ..., 0]
    assert biased[48, 64] / (biased[20, 20] + 1e-6) > plain[48, 64] / (plain[20, 20] + 1e-6)


def test_frozen_and_flagged(model):
    assert not model.trainable and model.differentiable
    assert model.trainable_weights == [] and model.weights == []


def test_config_round_trip_and_keras_save(tmp_path):
    m = IttiKochSaliency(
        working_size=(64, 48),
        centre_levels=(1, 2),
        surround_deltas=(2,),
        map_level=1,
        centre_bias=0.3,
        name="ik",
    )
    cfg = m.get_config()
    for key in (
        "working_size",
        "centre_levels",
        "surround_deltas",
        "map_level",
        "centre_bias",
        "centre_bias_sigma",
    ):
        assert key in cfg
    clone = IttiKochSaliency.from_config(json.loads(json.dumps(cfg)))
    x = np.random.default_rng(1).random((1, 48, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(m(x)), atol=1e-6)
    path = str(tmp_path / "ik.keras")
    m.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, IttiKochSaliency)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(m(x)), atol=1e-6)


def test_runs_inside_tf_function(model):
    f = tf.function(model)
    x = np.random.default_rng(2).random((2, 60, 80, 3), dtype=np.float32)
    np.testing.assert_allclose(f(x).numpy(), np.asarray(model(x)), atol=1e-5)


def test_bad_configs():
    with pytest.raises(ConfigError, match="too small"):
        IttiKochSaliency(working_size=(16, 12))
    with pytest.raises(ConfigError, match="centre_bias"):
        IttiKochSaliency(centre_bias=2.0)


def test_fine_copy_reads_outlines_and_texture_where_the_default_reads_the_blob(model):
    fine = model.fine_copy()
    assert fine.centre_levels == (0,) and fine.surround_deltas == (1, 2) and fine.map_level == 0
    for key in ("working_size", "centre_bias", "centre_bias_sigma", "antialias"):
        assert getattr(fine, key) == getattr(model, key), key
    # a large, plain bright disc: its rim is an edge, its middle is flat
    img = np.full((H, W, 3), 0.5, np.float32)
    yy, xx = np.mgrid[:H, :W]
    d = np.hypot(xx - 64, yy - 48)
    img[d < 30] = 0.8
    centre, rim = d < 8, (d > 26) & (d < 34)
    for m, low, high in ((model, 0.5, 1.0), (fine, 0.0, 0.1)):
        s = np.asarray(m(img[None]))[0, ..., 0]
        ratio = s[centre].mean() / s[rim].mean()
        # measured 0.66 (default) and 0.0 (fine): the bounds leave wide room either side
        assert low <= ratio <= high, (m.name, ratio)

    # a small patch of fine texture (2-pixel checks) on grey: the fine copy's map keeps
    # to the patch, the default's spreads around it
    img = np.full((H, W, 3), 0.5, np.float32)
    patch = (yy >= 40) & (yy < 56) & (xx >= 56) & (xx < 72)
    img[patch] = np.where(((yy + xx) % 4 < 2)[patch, None], 0.3, 0.7)
    shares = []
    for m in (model, fine):
        s = np.asarray(m(img[None]))[0, ..., 0]
        shares.append(s[patch].sum() / s.sum())
    # measured 0.38 (default) and 0.79 (fine)
    assert shares[1] > shares[0] + 0.2, shares
