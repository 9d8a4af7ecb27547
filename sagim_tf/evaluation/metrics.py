"""Evaluation metrics: Guidance Consistency (C1, C2), fit to a guiding map, distortion.

Everything here is plain NumPy (SSIM: scikit-image) on single images, so it runs under any Keras backend
and on maps produced by any saliency estimator (a ``keras.Model`` or a classical judge).

Conventions:
    * images are float RGB (H, W, 3) in [0, 1];
    * saliency and guiding maps are (H, W) or (H, W, 1) in [0, 1];
    * masks are (H, W) or (H, W, 1), bool or numbers (a value > 0.5 is inside).

Per-image functions return plain Python floats and bools so that rows serialise to JSON as
they are; :func:`aggregate` turns a list of rows into means and percentages.

Reference:
    Guidance Consistency follows §4.3 of Chen, Chang, Tsai, Wang and Chiu, "Guide Your Eyes:
    Learning Image Manipulation under Saliency Guidance", BMVC 2019.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from sagim_tf.utils.errors import InputError

__all__ = [
    "as_plane",
    "region_mean",
    "guidance_consistency",
    "cc",
    "kl",
    "mse",
    "psnr",
    "ssim",
    "changed_outside",
    "aggregate",
]


# ----------------------------------------------------------------------------- helpers


def as_plane(x, name: str, shape=None, dtype=np.float64) -> np.ndarray:
    """Check a map or mask and return it as a finite (H, W) array.

    Args:
        x: array-like, (H, W) or (H, W, 1); bool or numbers.
        name: what ``x`` is, for error messages.
        shape: optional (H, W) that the map must have.
        dtype: the returned dtype. Defaults to ``np.float64``.

    Raises:
        InputError: another shape, an empty map, non-numbers, NaN or infinities.
    """
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected shape (H, W) or (H, W, 1), got {tuple(np.shape(x))}")
    if shape is not None and arr.shape != tuple(shape):
        raise InputError(
            f"{name}: expected shape {tuple(shape)} or {tuple(shape) + (1,)}, "
            f"got {tuple(np.shape(x))}"
        )
    if arr.size == 0:
        raise InputError(f"{name}: is empty")
    if arr.dtype == bool:
        return arr.astype(dtype)
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    arr = arr.astype(dtype)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def _mask(x, name: str, shape=None) -> np.ndarray:
    m = as_plane(x, name) > 0.5
    if shape is not None and m.shape != tuple(shape):
        raise InputError(f"{name}: shape {m.shape} does not match the map's {tuple(shape)}")
    if not m.any():
        raise InputError(f"{name}: mask is empty (no pixel inside)")
    return m


def _rgb(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InputError(f"{name}: expected shape (H, W, 3), got {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{names}: shapes differ, {a.shape} vs {b.shape}")


# ----------------------------------------------------------------------------- C1 / C2


def region_mean(saliency, mask) -> float:
    """Mean of a saliency map over the pixels of a mask."""
    s = as_plane(saliency, "saliency")
    m = _mask(mask, "mask", s.shape)
    return float(s[m].mean())


def guidance_consistency(sal_original, sal_edited, mask_low, mask_high) -> dict:
    """Guidance Consistency of one edit (paper §4.3), under one estimator.

    Args:
        sal_original: the estimator's map of the original image, (H, W[, 1]).
        sal_edited: the same estimator's map of the edited image.
        mask_low: mask of O_low, the object the guidance asks to raise.
        mask_high: mask of O_high, the object the guidance asks to lower.

    Returns:
        ``{"c1", "c2", "low_before", "low_after", "high_before", "high_after"}`` where
        ``c1`` is ``low_after > high_after`` (O_low now beats O_high) and ``c2`` is
        ``low_after > low_before and high_after < high_before`` (both moved the way the
        guidance asks). Both comparisons are strict, so an unchanged image scores False.
    """
    s0 = as_plane(sal_original, "sal_original")
    s1 = as_plane(sal_edited, "sal_edited")
    _same_shape(s0, s1, "sal_original/sal_edited")
    lo = _mask(mask_low, "mask_low", s0.shape)
    hi = _mask(mask_high, "mask_high", s0.shape)
    low_before, low_after = float(s0[lo].mean()), float(s1[lo].mean())
    high_before, high_after = float(s0[hi].mean()), float(s1[hi].mean())
    return {
        "c1": bool(low_after > high_after),
        "c2": bool(low_after > low_before and high_after < high_before),
        "low_before": low_before,
        "low_after": low_after,
        "high_before": high_before,
        "high_after": high_after,
    }


# ----------------------------------------------------------------------------- map fit


def cc(a, b) -> float:
    """Pearson linear correlation coefficient of two maps (saliency benchmark "CC").

    1 for maps equal up to a positive affine change, -1 for inverted ones. When either map
    is constant the correlation is undefined and 0.0 is returned.
    """
    x = as_plane(a, "a")
    y = as_plane(b, "b")
    _same_shape(x, y, "cc")
    x = x - x.mean()
    y = y - y.mean()
    denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    if denom <= 1e-12:
        return 0.0
    return float((x * y).sum() / denom)


def kl(p, q, eps: float = 1e-7) -> float:
    """KL divergence KL(P || Q) of two maps, each normalised to sum to one.

    ``p`` is the reference (the guiding map) and ``q`` the prediction (the estimator's map of
    the edited image). We use the saliency-benchmark form (MIT/Tuebingen)
    ``sum P * log(eps + P / (Q + eps))``, which stays finite where Q is zero. 0 for equal
    maps, larger is worse. A map that sums to zero is an error.
    """
    x = as_plane(p, "p")
    y = as_plane(q, "q")
    _same_shape(x, y, "kl")
    if (x < 0).any() or (y < 0).any():
        raise InputError("kl: maps must be non-negative")
    sx, sy = x.sum(), y.sum()
    if sx <= 0 or sy <= 0:
        raise InputError("kl: a map sums to zero and cannot be normalised to a distribution")
    x = x / sx
    y = y / sy
    return float((x * np.log(eps + x / (y + eps))).sum())


# ----------------------------------------------------------------------------- distortion


def mse(a, b) -> float:
    """Mean squared error of two images (or maps) on the [0, 1] scale."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _same_shape(x, y, "mse")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("mse: inputs contain NaN or infinite values")
    return float(((x - y) ** 2).mean())


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; inf if equal."""
    err = mse(a, b)
    if err == 0.0:
        return float("inf")
    return float(10.0 * math.log10(data_range * data_range / err))


def ssim(a, b, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al., 2004) of two RGB images.

    ``skimage.metrics.structural_similarity`` with Gaussian-weighted local statistics
    (``sigma``), population covariances, K1 = 0.01 and K2 = 0.03, per channel and averaged.
    Also accepts (H, W) or (H, W, 1) maps.

    Args:
        a: image (H, W, 3) or map (H, W[, 1]).
        b: image or map of the same shape.
        data_range: the value range of the inputs. Defaults to ``1.0``.
        sigma: the Gaussian window's standard deviation. Defaults to ``1.5``.

    Raises:
        InputError: shapes differ, are not images, hold NaN or infinities, or are smaller
            than the 11-pixel window.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    _same_shape(x, y, "ssim")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if x.ndim != 3:
        raise InputError(f"ssim: expected (H, W, C) images, got {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("ssim: inputs contain NaN or infinite values")
    window = 2 * int(3.5 * sigma + 0.5) + 1  # skimage's Gaussian window (truncate=3.5)
    if min(x.shape[:2]) < window:
        raise InputError(f"ssim: image {x.shape[:2]} is smaller than the {window}-pixel window")
    return float(
        structural_similarity(
            x,
            y,
            data_range=data_range,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=sigma,
            use_sample_covariance=False,
        )
    )


def changed_outside(original, edited, region_mask, threshold: float = 0.05) -> float:
    """Share (0-1) of the pixels outside ``region_mask`` that the edit changed noticeably.

    A pixel counts as changed when its largest per-channel absolute difference exceeds
    ``threshold`` (on the [0, 1] scale; 0.05 is about 13 grey levels). Measures how far an
    edit spills outside the regions the guidance names. 0.0 when the region covers the image.
    """
    x = _rgb(original, "original")
    y = _rgb(edited, "edited")
    _same_shape(x, y, "original/edited")
    region = as_plane(region_mask, "region_mask") > 0.5
    if region.shape != x.shape[:2]:
        raise InputError(
            f"region_mask: shape {region.shape} does not match the image's {x.shape[:2]}"
        )
    outside = ~region
    if not outside.any():
        return 0.0
    changed = np.abs(x - y).max(axis=-1) > threshold
    return float(changed[outside].mean())


# ----------------------------------------------------------------------------- aggregation


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not _is_bool(v)


def _aggregate_dicts(dicts: Sequence[Mapping]) -> dict:
    out: dict = {}
    keys: list = []
    for d in dicts:
        for k in d:
            if k not in keys:
                keys.append(k)
    for k in keys:
        values = [d[k] for d in dicts if k in d and d[k] is not None]
        if not values:
            continue
        if all(_is_bool(v) for v in values):
            out[k] = 100.0 * sum(bool(v) for v in values) / len(values)
        elif all(_is_number(v) for v in values):
            finite = [float(v) for v in values if math.isfinite(float(v))]
            out[k] = float(np.mean(finite)) if finite else float(values[0])
        elif all(isinstance(v, Mapping) for v in values):
            out[k] = _aggregate_dicts(values)
    return out


def aggregate(rows: Sequence[Mapping], by: str | None = "method") -> dict:
    """Aggregate per-image rows: booleans -> percentage True, numbers -> mean.

    Nested dicts (such as a row's ``"judges": {name: guidance_consistency(...)}``) are
    aggregated key by key, so ``c1``/``c2`` become the percentages of images that satisfy
    them, as in the paper's tables. Non-finite numbers (PSNR of an unchanged image is inf)
    are left out of a mean; strings are ignored.

    Args:
        rows: per-image dicts.
        by: a key to group rows by (each group is aggregated separately and its size stored
            under ``"n"``), or None to aggregate all rows together.

    Returns:
        ``{group_value: {...}}`` when ``by`` is given, else one dict.
    """
    rows = list(rows)
    if by is None:
        out = _aggregate_dicts(rows)
        out["n"] = len(rows)
        return out
    groups: dict = {}
    for r in rows:
        if by not in r:
            raise InputError(f"aggregate: a row has no {by!r} key")
        groups.setdefault(r[by], []).append(r)
    result = {}
    for name, members in groups.items():
        agg = _aggregate_dicts(members)
        agg["n"] = len(members)
        result[name] = agg
    return result
