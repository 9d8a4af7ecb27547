"""Photographic textures for synthetic scenes: crops of the photographs scikit-image installs.

``sagim synth-coco --style photo`` paints backgrounds and objects with random crops of
real photographs instead of stripes and checkers, so that what G learns to edit looks
like what it will be asked to edit. The photographs are read from the installed
scikit-image package at run time; no image file is copied into this repository.

Two sets, kept disjoint (a test checks it):

* :data:`TEXTURE_SOURCES`: the photographs textures are cut from: the Middlebury
  motorcycle (left view), an immunohistochemistry slide, a retina, the Hubble deep field
  (colour), and brick, grass, gravel, the cameraman, coins and the moon (grey, tinted
  when used).
* :data:`EDIT_PHOTOS`: the photographs the demo edits at the end (astronaut, chelsea the
  cat, coffee, rocket). None of them, nor an alias of one (``skimage.data.cat`` is
  chelsea), is a texture source, so the demo's edits are of photographs G never saw.

Each texture is a crop at a random scale, flipped, colour-jittered (channel gains, gamma,
saturation; grey sources get a random tint), under soft shading (a low-frequency
brightness ramp) and mild defocus. Everything is drawn from the ``numpy`` generator passed
in, so a seed gives the same textures on every run.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from sagim_tf.utils.images import interpolation

#: ``skimage.data`` loaders that textures are cut from.
TEXTURE_SOURCES = (
    "stereo_motorcycle",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "moon",
)
#: The photographs the demo edits; never texture sources.
EDIT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
#: ``skimage.data`` names that load one of :data:`EDIT_PHOTOS` under another name.
EDIT_PHOTO_ALIASES = {"cat": "chelsea"}


@functools.lru_cache(maxsize=1)
def load_sources() -> tuple[np.ndarray, ...]:
    """The texture photographs as float32 (H, W, 3) in [0, 1] (grey ones repeated)."""
    import skimage.data  # lazy: scikit-image's data registry is only needed for photo scenes

    out = []
    for name in TEXTURE_SOURCES:
        img = getattr(skimage.data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        img = np.asarray(img, np.float32) / 255.0
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3]))
    return tuple(out)


def _luma(x):
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def shading(rng: np.random.Generator, h: int, w: int, low=0.7, high=1.1) -> np.ndarray:
    """A smooth multiplicative brightness ramp (H, W, 1): light falling across a surface."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1) + 1.0) / 2.0
    a, b = rng.uniform(low, high, 2)
    return (a + (b - a) * t)[..., None].astype(np.float32)


def defocus(rng: np.random.Generator, img: np.ndarray, max_sigma: float = 1.0) -> np.ndarray:
    """A mild Gaussian defocus of random strength (sigma in [0, max_sigma] pixels)."""
    sigma = float(rng.uniform(0.0, max_sigma))
    if sigma < 0.2:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def texture(rng: np.random.Generator, h: int, w: int, sources=None) -> np.ndarray:
    """One photographic texture patch, float32 (h, w, 3) in [0, 1].

    Args:
        rng: numpy.random.Generator. All randomness comes from it.
        h: int. Height of the patch.
        w: int. Width of the patch.
        sources: sequence of arrays. Photographs to cut from. Defaults to
            :func:`load_sources`.
    """
    sources = load_sources() if sources is None else sources
    k = int(rng.integers(len(sources)))
    src = sources[k]
    sh, sw = src.shape[:2]
    # the crop covers between 35% and 100% of what the source can give at this aspect
    fit = min(sh / h, sw / w)
    scale = fit * float(rng.uniform(0.35, 1.0))
    ch, cw = max(2, int(h * scale)), max(2, int(w * scale))
    y0 = int(rng.integers(0, sh - ch + 1))
    x0 = int(rng.integers(0, sw - cw + 1))
    patch = src[y0:y0 + ch, x0:x0 + cw]
    patch = cv2.resize(patch, (w, h), interpolation=interpolation(ch, h))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.3:
        patch = patch[::-1]
    grey = bool(np.allclose(src[..., 0], src[..., 1]) and np.allclose(src[..., 1], src[..., 2]))
    if grey:  # tint: a random colour scaled by the texture's brightness
        tint = rng.uniform(0.35, 1.0, 3).astype(np.float32)
        patch = patch * tint / max(float(_luma(tint)), 1e-3) * float(rng.uniform(0.5, 0.9))
    gains = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    patch = np.clip(patch * gains, 0.0, 1.0) ** float(rng.uniform(0.8, 1.25))
    y = _luma(patch)[..., None]
    patch = y + (patch - y) * float(rng.uniform(0.6, 1.3))
    patch = patch * shading(rng, h, w)
    return np.clip(defocus(rng, np.ascontiguousarray(patch, np.float32)), 0.0, 1.0)


def cast_shadow(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Darken ``img`` under a soft shadow of ``mask`` (H, W) offset down and sideways."""
    h, w = mask.shape
    dy = int(rng.integers(1, max(2, h // 25) + 1))
    dx = int(rng.integers(-max(1, w // 30), max(1, w // 30) + 1))
    shifted = np.zeros_like(mask, np.float32)
    ys, yd = slice(0, h - dy), slice(dy, h)
    if dx >= 0:
        xs, xd = slice(0, w - dx), slice(dx, w)
    else:
        xs, xd = slice(-dx, w), slice(0, w + dx)
    shifted[yd, xd] = mask[ys, xs]
    soft = cv2.GaussianBlur(shifted, (0, 0), max(1.0, min(h, w) / 60.0))
    depth = float(rng.uniform(0.2, 0.45))
    return (img * (1.0 - depth * soft)[..., None]).astype(np.float32)
