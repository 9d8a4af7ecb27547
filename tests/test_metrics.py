"""Metrics on constructed inputs with known answers."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from sagim_tf.evaluation import metrics as M
from sagim_tf.utils.errors import InputError


def _masks(h=8, w=8):
    low = np.zeros((h, w), bool)
    high = np.zeros((h, w), bool)
    low[:, : w // 2] = True
    high[:, w // 2 :] = True
    return low, high


def _maps(low_val, high_val, low, high):
    s = np.zeros(low.shape, np.float32)
    s[low] = low_val
    s[high] = high_val
    return s


def test_guidance_consistency_flip_satisfies_c1_and_c2():
    low, high = _masks()
    before = _maps(0.2, 0.8, low, high)
    after = _maps(0.7, 0.3, low, high)
    r = M.guidance_consistency(before, after[..., None], low, high[..., None])
    assert r["c1"] is True and r["c2"] is True
    assert r["low_before"] == pytest.approx(0.2) and r["low_after"] == pytest.approx(0.7)
    assert r["high_before"] == pytest.approx(0.8) and r["high_after"] == pytest.approx(0.3)


def test_guidance_consistency_c2_without_c1_and_c1_without_c2():
    low, high = _masks()
    before = _maps(0.2, 0.8, low, high)
    # both moved the right way but the order did not flip: C2 only
    r = M.guidance_consistency(before, _maps(0.4, 0.6, low, high), low, high)
    assert (r["c1"], r["c2"]) == (False, True)
    # order flipped but O_high rose as well: C1 only
    before = _maps(0.5, 0.6, low, high)
    r = M.guidance_consistency(before, _maps(0.9, 0.7, low, high), low, high)
    assert (r["c1"], r["c2"]) == (True, False)


def test_guidance_consistency_unchanged_image_fails_c2():
    low, high = _masks()
    s = _maps(0.3, 0.3, low, high)
    r = M.guidance_consistency(s, s, low, high)
    assert r["c1"] is False and r["c2"] is False


def test_guidance_consistency_uses_means_over_masks():
    low, high = _masks(4, 4)
    s0 = np.zeros((4, 4))
    s1 = np.zeros((4, 4))
    s1[0, 0] = 1.0  # one of the 8 O_low pixels
    r = M.guidance_consistency(s0, s1, low, high)
    assert r["low_after"] == pytest.approx(1 / 8)


@pytest.mark.parametrize(
    "bad",
    [
        dict(sal_edited=np.zeros((8, 7))),
        dict(mask_low=np.zeros((8, 8), bool)),
        dict(mask_high=np.ones((4, 4), bool)),
        dict(sal_original=np.full((8, 8), np.nan)),
    ],
)
def test_guidance_consistency_rejects_bad_input(bad):
    low, high = _masks()
    args = dict(
        sal_original=np.zeros((8, 8)), sal_edited=np.zeros((8, 8)), mask_low=low, mask_high=high
    )
    args.update(bad)
    with pytest.raises(InputError):
        M.guidance_consistency(**args)


def test_cc_known_values():
    rng = np.random.default_rng(0)
    a = rng.random((10, 12))
    assert M.cc(a, a) == pytest.approx(1.0)
    assert M.cc(a, 3 * a + 1) == pytest.approx(1.0)
    assert M.cc(a, 1 - a) == pytest.approx(-1.0)
    assert M.cc(a, np.full_like(a, 0.5)) == 0.0
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    y = np.array([[1.0, 3.0, 2.0, 4.0]])
    assert M.cc(x, y) == pytest.approx(0.8)  # Pearson r computed by hand


def test_kl_known_values():
    p = np.array([[0.5, 0.5]])
    q = np.array([[0.25, 0.75]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    # rel 1e-6 absorbs the eps=1e-12 terms and float64 rounding of the logs.
    assert M.kl(p, q, eps=1e-12) == pytest.approx(expected, rel=1e-6)
    # maps are normalised to distributions first: scaling changes nothing
    assert M.kl(4 * p, 0.1 * q, eps=1e-12) == pytest.approx(expected, rel=1e-6)
    a = np.random.default_rng(1).random((6, 6))
    # abs 1e-5: log(eps + 1) terms with the default eps=1e-7, summed over the map.
    assert M.kl(a, a) == pytest.approx(0.0, abs=1e-5)
    assert M.kl(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) > 10  # disjoint: large, finite
    with pytest.raises(InputError):
        M.kl(np.zeros((3, 3)), np.ones((3, 3)))


def test_mse_psnr_known_values():
    a = np.full((5, 6, 3), 0.5, np.float32)
    b = a + np.float32(0.1)
    # 0.1 is not exact in float32: the difference is 0.1 up to about 1e-7 relative.
    assert M.mse(a, b) == pytest.approx(0.01, rel=1e-5)
    assert M.psnr(a, b) == pytest.approx(20.0, rel=1e-4)
    assert M.psnr(a, a) == float("inf")
    with pytest.raises(InputError):
        M.mse(a, a[:4])


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_is_skimages(seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64] / 48.0
    base = np.stack([np.sin(6 * xx), np.cos(4 * yy), xx * yy], -1) * 0.4 + 0.5
    a = np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.08, a.shape) + 0.05, 0, 1).astype(np.float32)
    ref = structural_similarity(
        a.astype(np.float64),
        b.astype(np.float64),
        data_range=1,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    # The same call on the same float64 arrays: equal to the last bit.
    assert M.ssim(a, b) == ref
    assert 0.0 < ref < 0.99  # the noisy pair is far from identical
    # Identical images: 1 up to float64 rounding in the local variances.
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_rejects_tiny_images():
    with pytest.raises(InputError):
        M.ssim(np.zeros((5, 5, 3)), np.zeros((5, 5, 3)))


def test_changed_outside_counts_only_outside_pixels():
    a = np.zeros((4, 5, 3), np.float32)
    b = a.copy()
    region = np.zeros((4, 5), bool)
    region[0] = True  # 5 pixels inside, 15 outside
    b[0] = 1.0  # inside changes do not count
    b[1, :3, 1] = 0.2  # 3 outside pixels changed by 0.2 in one channel
    b[2, 0] = 0.01  # below threshold
    assert M.changed_outside(a, b, region, threshold=0.05) == pytest.approx(3 / 15)
    assert M.changed_outside(a, b, region, threshold=0.5) == 0.0
    assert M.changed_outside(a, b, np.ones((4, 5), bool)) == 0.0
    with pytest.raises(InputError):
        M.changed_outside(a, b, np.ones((3, 5), bool))


def test_aggregate_percentages_means_and_nesting():
    rows = [
        {
            "id": "0",
            "method": "a",
            "mse": 0.1,
            "psnr": 10.0,
            "judges": {"j": {"c1": True, "c2": False, "cc": 0.5}},
        },
        {
            "id": "1",
            "method": "a",
            "mse": 0.3,
            "psnr": float("inf"),
            "judges": {"j": {"c1": False, "c2": False, "cc": 0.7}},
        },
        {
            "id": "0",
            "method": "b",
            "mse": 0.0,
            "psnr": 30.0,
            "judges": {"j": {"c1": True, "c2": True, "cc": 1.0}},
        },
    ]
    agg = M.aggregate(rows)
    assert set(agg) == {"a", "b"}
    assert agg["a"]["n"] == 2
    assert agg["a"]["mse"] == pytest.approx(0.2)
    assert agg["a"]["psnr"] == pytest.approx(10.0)  # the infinite PSNR is left out
    assert agg["a"]["judges"]["j"]["c1"] == pytest.approx(50.0)
    assert agg["a"]["judges"]["j"]["c2"] == pytest.approx(0.0)
    assert agg["a"]["judges"]["j"]["cc"] == pytest.approx(0.6)
    assert agg["b"]["judges"]["j"]["c2"] == pytest.approx(100.0)
    assert "id" not in agg["a"]
    overall = M.aggregate(rows, by=None)
    assert overall["n"] == 3 and overall["judges"]["j"]["c1"] == pytest.approx(200 / 3)
