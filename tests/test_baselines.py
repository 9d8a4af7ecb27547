"""The classical baselines WSR, HAG, OHA: they raise the target's saliency and keep the image."""

import importlib

import cv2
import numpy as np
import pytest

from sagim_tf import baselines
from sagim_tf.baselines import BASELINES, get_baseline
from sagim_tf.baselines.oha import best_rotation, circular_emd
from sagim_tf.utils.errors import ConfigError, InputError
from tests.eval_helpers import lab_contrast_judge, scene, spectral_residual_judge

JUDGE_FNS = {"spectral-residual": spectral_residual_judge, "lab-contrast": lab_contrast_judge}


def _relative_saliency(judge, img, target, others):
    """Mean saliency of the target over that of the strongest other region."""
    s = np.asarray(judge(img[None]))[0, ..., 0]
    return s[target].mean() / max(s[m].mean() for m in others)


CASES = [
    ("wsr", "grey", "spectral-residual"),
    ("wsr", "grey", "lab-contrast"),
    ("hag", "grey", "spectral-residual"),
    ("hag", "grey", "lab-contrast"),
    # OHA changes hue only, so it needs a chromatic surround and a colour-aware judge.
    ("oha", "green", "lab-contrast"),
    ("oha", "green", "spectral-residual"),
]


@pytest.mark.parametrize("name,kind,judge", CASES)
def test_baseline_raises_target_saliency_relative_to_distractor(name, kind, judge):
    img, target, distractor = scene(kind)
    edited = get_baseline(name)(img, target)
    fn = JUDGE_FNS[judge]
    before = _relative_saliency(fn, img, target, [distractor])
    after = _relative_saliency(fn, edited, target, [distractor])
    assert after > 1.3 * before, (name, kind, judge, before, after)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_keeps_size_range_dtype_and_is_deterministic(name):
    rng = np.random.default_rng(3)
    img = rng.random((37, 53, 3)).astype(np.float32)
    mask = np.zeros((37, 53, 1), np.float32)
    mask[10:25, 5:30] = 1.0
    fn = get_baseline(name)
    out = fn(img, mask)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, fn(img, mask[..., 0] > 0.5))  # bool (H, W) mask: same
    assert not np.array_equal(out, img)
    u8 = (img * 255).astype(np.uint8)
    assert fn(u8, mask).shape == img.shape


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_rejects_bad_input(name):
    fn = get_baseline(name)
    img, target, _ = scene("grey", 32, 40)
    with pytest.raises(InputError):
        fn(img, target[:, :-1])  # wrong mask shape
    with pytest.raises(InputError):
        fn(img, np.stack([target] * 3, -1))  # 3-channel mask
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError):
        fn(bad, target)
    bad_mask = target.astype(np.float32)
    bad_mask[1, 1] = np.nan
    with pytest.raises(InputError):
        fn(img, bad_mask)
    with pytest.raises(InputError):
        fn(img, np.zeros_like(target))  # empty target
    with pytest.raises(InputError):
        fn(img[None], target)  # a batch
    with pytest.raises(InputError):
        fn(img * 2.0, target)  # out of range


def test_zero_strength_is_close_to_identity():
    img, target, _ = scene("green", 48, 64)
    np.testing.assert_array_equal(baselines.hag(img, target, iterations=0), img)
    out = baselines.wsr(img, target, luminance=0, saturation=0, sharpness=0)
    assert np.abs(out - img).max() < 2e-3  # Lab round trip only
    out = baselines.oha(img, target, strength=0)
    assert np.abs(out - img).max() < 2e-3


def test_oha_keeps_intensity_and_chroma_and_changes_hue():
    img, target, distractor = scene("green", 64, 80, noise=0.0)
    out = baselines.oha(img, target, feather=0)
    lab0 = cv2.cvtColor(img, cv2.COLOR_RGB2Lab)
    lab1 = cv2.cvtColor(out, cv2.COLOR_RGB2Lab)
    inside = target
    assert np.abs(lab1[..., 0][inside] - lab0[..., 0][inside]).max() < 1.0
    c0 = np.hypot(lab0[..., 1], lab0[..., 2])[inside]
    c1 = np.hypot(lab1[..., 1], lab1[..., 2])[inside]
    assert np.abs(c1 - c0).max() < 1.5
    h0 = np.arctan2(lab0[..., 2], lab0[..., 1])[inside].mean()
    h1 = np.arctan2(lab1[..., 2], lab1[..., 1])[inside].mean()
    assert abs(np.angle(np.exp(1j * (h1 - h0)))) > np.pi / 2  # hue pushed far from the green
    # Away from the target: untouched, up to the float32 Lab round trip (about 1e-3).
    np.testing.assert_allclose(out[distractor], img[distractor], atol=2e-3)


def test_oha_returns_image_unchanged_for_grey_surround():
    img = np.full((32, 32, 3), 0.5, np.float32)
    img[8:20, 8:20] = (0.6, 0.4, 0.4)
    m = np.zeros((32, 32), bool)
    m[8:20, 8:20] = True
    # Unchanged up to the float32 Lab round trip (about 1e-3).
    np.testing.assert_allclose(baselines.oha(img, m), img, atol=2e-3)


def test_circular_emd_and_best_rotation():
    p = np.zeros(8)
    p[0] = 1.0
    q = np.zeros(8)
    q[2] = 1.0
    assert circular_emd(p, q)[0] == pytest.approx(2.0)  # two bins apart
    q = np.zeros(8)
    q[7] = 1.0
    assert circular_emd(p, q)[0] == pytest.approx(1.0)  # wraps around the circle
    assert best_rotation(p, p) == 4  # opposite hue is farthest


def test_registry_and_docs():
    assert set(BASELINES) == {"wsr", "hag", "oha", "operator-rule"}
    assert get_baseline(" WSR ") is baselines.wsr
    with pytest.raises(ConfigError):
        get_baseline("nope")
    for name in ("wsr", "hag", "oha"):  # re-implementations of published methods
        doc = importlib.import_module(BASELINES[name].__module__).__doc__
        assert "What we simplified" in doc and "Reference" in doc
    # our own fixed recipe says so
    assert (
        "Not from a paper" in importlib.import_module(BASELINES["operator-rule"].__module__).__doc__
    )
    assert set(baselines.available_baselines()) == set(BASELINES)
