"""Shrinking photos for the networks: float resizes, and a uint8 photo's float small copy
made a strip at a time (the editor's and ``apply_fields``' working copies)."""

from __future__ import annotations

import cv2
import numpy as np


def as_float(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 in [0, 1]: a uint8 photo read as ``k / 255``, a float one as is."""
    return image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 else image


def interpolation(rows: int, new_rows: int) -> int:
    """OpenCV's interpolation for resizing ``rows`` rows to ``new_rows``: area averaging
    when it shrinks, bilinear when it grows (or keeps the height)."""
    return cv2.INTER_AREA if rows > new_rows else cv2.INTER_LINEAR


def resize_image(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """x (H, W, C) float resized to (height, width, C): OpenCV's area resize when it
    shrinks, bilinear when it grows (:func:`interpolation`)."""
    interp = interpolation(x.shape[0], height)
    out = cv2.resize(
        np.ascontiguousarray(x, np.float32), (int(width), int(height)), interpolation=interp
    )
    return out.reshape(height, width, -1)


def small_copy(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float32 copy in [0, 1] of a float or uint8 photo at (height, width) <= its size.

    A uint8 photo is read as ``k / 255`` a strip at a time and shrunk across, then down
    (OpenCV's area resize is separable, so this is :func:`resize_image` of the float photo
    up to float32 rounding), without a float copy of the whole photo.
    """
    h, w = image.shape[:2]
    if (height, width) == (h, w):
        return as_float(image)
    if image.dtype != np.uint8:
        return np.clip(resize_image(image, height, width), 0.0, 1.0)
    interp = interpolation(h, height)
    across = np.empty((h, width, 3), np.float32)
    strip = np.empty((min(h, 64), w, 3), np.float32)
    for r0 in range(0, h, len(strip)):
        rows = image[r0 : r0 + len(strip)]
        part = np.divide(rows, np.float32(255.0), out=strip[: len(rows)])
        across[r0 : r0 + len(rows)] = cv2.resize(
            part, (width, len(rows)), interpolation=interp
        ).reshape(len(rows), width, 3)
    down = cv2.resize(across, (width, height), interpolation=interp)
    return np.clip(down.reshape(height, width, 3), 0.0, 1.0)
