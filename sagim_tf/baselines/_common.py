"""Shared input checks and colour helpers for the classical baselines."""

from __future__ import annotations

import cv2
import numpy as np

from sagim_tf.utils.checks import check_image
from sagim_tf.utils.errors import InputError


def check_pair(image, target_mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (H, W, 3) image in [0, 1] and its (H, W[, 1]) target mask.

    Returns the image as contiguous float32 and the mask as float32 (H, W) in [0, 1]
    (bool masks become 0/1; float masks are kept as soft weights). Raises InputError for a
    batch, a wrong shape, NaN, values outside [0, 1], or an empty target.
    """
    img = check_image(image, "image")
    if img.ndim != 3:
        raise InputError(f"image: baselines edit one image (H, W, 3), got {tuple(img.shape)}")
    m = np.asarray(target_mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.shape != img.shape[:2]:
        raise InputError(
            f"target_mask: expected shape {img.shape[:2]} or {img.shape[:2] + (1,)} "
            f"to match the image, got {tuple(np.shape(target_mask))}"
        )
    if m.dtype == bool:
        m = m.astype(np.float32)
    elif np.issubdtype(m.dtype, np.number):
        m = m.astype(np.float32)
        if not np.isfinite(m).all():
            raise InputError("target_mask: contains NaN or infinite values")
        if m.min() < 0.0 or m.max() > 1.0:
            raise InputError(
                f"target_mask: values must lie in [0, 1], found [{m.min():.4g}, {m.max():.4g}]"
            )
    else:
        raise InputError(f"target_mask: expected bool or numbers, got dtype {m.dtype}")
    if not (m > 0.5).any():
        raise InputError("target_mask: the target is empty (no pixel above 0.5)")
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(m)


def check_strength(name: str, value: float, lo: float = 0.0, hi: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a number, got {value!r}") from exc
    if not np.isfinite(v) or v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InputError(f"{name}: must be {bound}, got {value!r}")
    return v


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders; sigma in pixels (0 returns a copy)."""
    if sigma <= 0:
        return x.copy()
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(x, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def scale_sigma(image: np.ndarray, fraction: float) -> float:
    """A length given as a fraction of the image diagonal, in pixels (at least 0.5)."""
    h, w = image.shape[:2]
    return max(0.5, fraction * float(np.hypot(h, w)))


def soft_weight(mask: np.ndarray, sigma: float) -> np.ndarray:
    """1 inside the target, falling smoothly to 0 outside over about ``2 * sigma`` pixels."""
    return np.maximum(mask, np.clip(blur(mask, sigma) * 2.0, 0.0, 1.0)).astype(np.float32)


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """float32 RGB in [0, 1] -> CIELAB (L in [0, 100], a and b roughly in [-128, 127])."""
    return cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB -> float32 RGB clipped to [0, 1]."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def finish(edited: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], float32, and make sure no NaN leaves a baseline."""
    out = np.clip(np.nan_to_num(edited, nan=0.0), 0.0, 1.0).astype(np.float32)
    return out
