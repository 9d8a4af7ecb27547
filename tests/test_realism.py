"""The photorealism measure: local affine residual, non-affine share, colour cast outside."""

from __future__ import annotations

import numpy as np
import pytest

from sagim_tf.evaluation.realism import (
    colour_cast_outside,
    default_radius,
    local_affine_residual,
    non_affine,
)
from sagim_tf.utils.errors import InputError


def _photo(h=96, w=128, seed=0):
    """Smooth gradients, a few flat blocks and mild texture: photo-like enough for the fit."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.4 * xx * yy], -1)
    img[h // 4 : h // 2, w // 4 : w // 2] = (0.8, 0.2, 0.1)
    img += 0.03 * rng.standard_normal(img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def _reference_residual(original, edited, r, eps):
    """Brute force: a ridge least-squares fit in every (reflect-padded) window, by lstsq."""
    i = original.astype(np.float64)
    d = edited.astype(np.float64) - i
    h, w = i.shape[:2]
    ip = np.pad(i, ((r, r), (r, r), (0, 0)), mode="reflect")
    dp = np.pad(d, ((r, r), (r, r), (0, 0)), mode="reflect")
    n = (2 * r + 1) ** 2
    coef = np.zeros((h, w, 3, 4))  # per channel: a (3) and b
    for y in range(h):
        for x in range(w):
            X = ip[y : y + 2 * r + 1, x : x + 2 * r + 1].reshape(n, 3)
            Xc = np.hstack([X, np.ones((n, 1))])
            # ridge on a only: minimise mean((Xa + b - t)^2) + eps |a|^2
            ridge = np.sqrt(n * eps) * np.hstack([np.eye(3), np.zeros((3, 1))])
            A = np.vstack([Xc, ridge])
            for c in range(3):
                t = np.concatenate(
                    [dp[y : y + 2 * r + 1, x : x + 2 * r + 1, c].reshape(n), np.zeros(3)]
                )
                coef[y, x, c] = np.linalg.lstsq(A, t, rcond=None)[0]
    cp = np.pad(coef, ((r, r), (r, r), (0, 0), (0, 0)), mode="reflect")
    mean_coef = np.zeros_like(coef)
    for y in range(h):
        for x in range(w):
            mean_coef[y, x] = cp[y : y + 2 * r + 1, x : x + 2 * r + 1].mean(axis=(0, 1))
    fitted = np.einsum("hwck,hwk->hwc", mean_coef[..., :3], i) + mean_coef[..., 3]
    return d - fitted


def test_matches_a_brute_force_numpy_reference():
    orig = _photo(14, 17)
    rng = np.random.default_rng(1)
    edited = np.clip(orig * 1.2 - 0.05 + 0.05 * rng.standard_normal(orig.shape), 0, 1)
    edited = edited.astype(np.float32)  # the measure reads images as float32
    fast = local_affine_residual(orig, edited, radius=2, eps=1e-3)
    slow = _reference_residual(orig, edited, 2, 1e-3)
    # float64 both ways; 1e-9 absorbs the box filters' running sums against lstsq
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_a_global_affine_colour_change_is_almost_all_explained():
    orig = _photo()
    m = np.array([[1.1, 0.05, 0.0], [0.0, 0.9, 0.05], [0.02, 0.0, 0.8]], np.float32)
    edited = np.clip(orig @ m.T + 0.03, 0, 1)
    assert non_affine(orig, edited)["share"] < 0.02


def test_exposure_and_saturation_score_near_zero():
    orig = _photo()
    y = orig.mean(-1, keepdims=True)
    edited = np.clip((y + 1.3 * (orig - y)) * 1.25, 0, 1)
    assert non_affine(orig, edited)["share"] < 0.02


def test_noise_scores_high():
    orig = _photo()
    edited = np.clip(orig + 0.05 * np.random.default_rng(3).standard_normal(orig.shape), 0, 1)
    result = non_affine(orig, edited)
    assert result["share"] > 0.6
    # the noise is ~0.05 * 255 = 12.75 levels RMS, less clipping and what the fit absorbs
    assert 8 < result["rms"] < 13


def test_ringing_at_edges_scores_higher_than_a_smooth_local_edit():
    orig = _photo()
    h, w = orig.shape[:2]
    # ringing: a sharpening overshoot concentrated at the block's edges
    blurred = np.stack(
        [
            np.convolve(row, np.ones(5) / 5, mode="same")
            for row in orig.reshape(-1, w * 3).reshape(h, w, 3).transpose(0, 2, 1).reshape(-1, w)
        ]
    )
    blurred = blurred.reshape(h, 3, w).transpose(0, 2, 1)
    ringing = np.clip(orig + 1.5 * (orig - blurred), 0, 1)
    # a smooth local edit: exposure that rises slowly from left to right
    ramp = np.linspace(1.0, 1.4, w)[None, :, None]
    smooth = np.clip(orig * ramp, 0, 1)
    assert non_affine(orig, ringing)["share"] > 5 * non_affine(orig, smooth)["share"]


def test_no_edit_scores_zero():
    orig = _photo()
    assert non_affine(orig, orig) == {"share": 0.0, "rms": 0.0}


def test_default_radius_and_errors():
    assert default_radius(192, 256) == 4
    assert default_radius(10, 10) == 1
    orig = _photo(8, 8)
    with pytest.raises(InputError, match="radius"):
        local_affine_residual(orig, orig, radius=4)
    with pytest.raises(InputError, match="same size"):
        local_affine_residual(orig, _photo(8, 9))
    with pytest.raises(InputError):
        local_affine_residual(orig, np.full_like(orig, np.nan))


def test_colour_cast_outside():
    orig = _photo()
    inside = np.zeros(orig.shape[:2], bool)
    inside[:40] = True
    edited = orig.copy()
    edited[:40] = np.clip(edited[:40] * 1.3, 0, 1)  # changed only inside
    assert colour_cast_outside(orig, edited, inside) == 0.0
    edited[40:, :, 2] = np.clip(edited[40:, :, 2] + 0.1, 0, 1)  # a blue cast outside
    cast = colour_cast_outside(orig, edited, inside[..., None])
    assert 3 < cast < 20  # a +0.1 blue shift is a clearly visible, moderate ΔE
    assert colour_cast_outside(orig, edited, np.ones_like(inside)) == 0.0


def test_the_training_loss_matches_the_measure():
    from sagim_tf.losses.photorealism import local_affine_residual as residual_ops
    from sagim_tf.losses.photorealism import photorealism_loss

    orig = _photo(40, 48)
    rng = np.random.default_rng(2)
    edited = np.clip(orig * 1.1 + 0.04 * rng.standard_normal(orig.shape), 0, 1).astype(np.float32)
    want = local_affine_residual(orig, edited, radius=3, eps=1e-3)
    got = np.asarray(residual_ops(orig[None], edited[None], radius=3, eps=1e-3))[0]
    # float32 in the keras.ops version against float64 in NumPy: covariances by
    # E[xy] - E[x]E[y] in float32 differ by ~1e-6 here; 1e-5 leaves a 10x margin
    np.testing.assert_allclose(got, want, atol=1e-5)
    loss = float(photorealism_loss(orig[None], edited[None], radius=3, eps=1e-3))
    np.testing.assert_allclose(loss, np.mean(want**2), rtol=1e-3)  # same float32 noise, averaged


def test_the_training_loss_has_finite_gradients_and_is_zero_for_no_edit():
    import tensorflow as tf

    from sagim_tf.losses.photorealism import photorealism_loss

    orig = tf.constant(_photo(24, 32)[None])
    flat = tf.constant(np.full((1, 24, 32, 3), 0.5, np.float32))  # a window with no variance
    for image in (orig, flat):
        assert float(photorealism_loss(image, image, radius=2)) == 0.0
        edited = tf.Variable(tf.clip_by_value(image + 0.1, 0, 1))
        with tf.GradientTape() as tape:
            loss = photorealism_loss(image, edited, radius=2)
        grad = tape.gradient(loss, edited).numpy()
        assert np.isfinite(grad).all()


def test_sagim_trains_with_the_photorealism_term_only_when_asked():
    from tests.helpers import random_batch, tiny_sagim

    image, guidance = random_batch(2, 24, 32)
    model = tiny_sagim()
    model.compile(loss_weights={"adv": 0.0, "photorealism": 10.0})
    logs = model.train_on_batch({"image": image, "guidance": guidance}, return_dict=True)
    assert np.isfinite(logs["photorealism_loss"]) and logs["photorealism_loss"] >= 0.0
    plain = tiny_sagim()
    plain.compile(loss_weights={"adv": 0.0})
    assert "photorealism_loss" not in plain.train_on_batch(
        {"image": image, "guidance": guidance}, return_dict=True
    )


def test_one_reference_scores_several_edits_as_the_functions_do():
    from sagim_tf.evaluation.realism import Reference

    orig = _photo()
    rng = np.random.default_rng(5)
    inside = np.zeros(orig.shape[:2], bool)
    inside[:30] = True
    reference = Reference(orig)
    for k in range(2):
        edited = np.clip(orig * (1.1 + 0.1 * k) + 0.02 * rng.standard_normal(orig.shape), 0, 1)
        edited = edited.astype(np.float32)
        # the same arithmetic in the same order: equal, not merely close
        assert reference.non_affine(edited) == non_affine(orig, edited)
        assert reference.colour_cast_outside(edited, inside) == colour_cast_outside(
            orig, edited, inside
        )
