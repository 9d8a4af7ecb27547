"""OHA: attention retargeting by hue manipulation (Mateescu & Bajic, 2014/2016).

References:
    V. A. Mateescu and I. V. Bajic, "Attention retargeting by color manipulation in
    images", Proc. 1st International Workshop on Perception Inspired Video Processing
    (PIVP), ACM Multimedia, 2014.
    V. A. Mateescu and I. V. Bajic, "Visual attention retargeting", IEEE MultiMedia 23(1),
    2016.

Principle (from the papers, as summarised in SaGIM §2): keep every pixel's intensity and
chroma, and change only hue, so that the hue distribution of the target region becomes as
different as possible from the hue distribution of its neighbourhood.

What we simplified:
    * Hue, chroma and intensity are the polar form of CIELAB: hue = atan2(b*, a*),
      chroma = |(a*, b*)|, intensity = L*. Colours that fall outside the sRGB gamut after
      the hue change are clipped, which can lower their chroma slightly.
    * The neighbourhood is a ring around the target (the target dilated by ``ring`` times
      the image diagonal, minus the target). Hue histograms (``bins`` bins) are weighted by
      chroma, and pixels below ``min_chroma`` are left out, so grey pixels, which have no
      meaningful hue, do not count.
    * The edit is one global rotation of the target's hues; we choose the rotation that
      maximises the circular Earth Mover's Distance between the rotated target histogram and
      the ring's, by exhaustive search over the bin angles. The papers optimise the target
      hues more freely; a rotation keeps the target's internal hue structure.
    * The target edge is feathered over ``feather`` times the diagonal so no seam appears.
    * If the ring (or the target) has no chromatic pixel, every hue is equally far and the
      image is returned unchanged: OHA cannot retarget attention between grey regions.
"""

from __future__ import annotations

import cv2
import numpy as np

from sagim_tf.baselines._common import (
    check_pair,
    check_strength,
    finish,
    lab_to_rgb,
    rgb_to_lab,
    scale_sigma,
    soft_weight,
)


def hue_histogram(hue: np.ndarray, chroma: np.ndarray, bins: int) -> np.ndarray:
    """Chroma-weighted histogram of hue angles (radians), normalised to sum to 1 (or zeros)."""
    idx = np.floor((hue % (2 * np.pi)) / (2 * np.pi) * bins).astype(np.int64) % bins
    hist = np.bincount(idx.ravel(), weights=chroma.ravel(), minlength=bins).astype(np.float64)
    total = hist.sum()
    return hist / total if total > 1e-9 else hist


def circular_emd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Earth Mover's Distance on the circle between histograms, in bins.

    ``p`` may be (K, bins) to score K candidates against one ``q`` (bins,). For 1-D circular
    histograms of equal mass, EMD = sum_k |D_k - median(D)| with D the cumulative difference.
    """
    d = np.cumsum(np.atleast_2d(p) - q[None, :], axis=-1)
    return np.abs(d - np.median(d, axis=-1, keepdims=True)).sum(axis=-1)


def best_rotation(target_hist: np.ndarray, ring_hist: np.ndarray) -> int:
    """Bin shift of the target histogram that maximises its circular EMD to the ring's.

    Ties go to the smallest absolute shift (the most conservative edit).
    """
    bins = target_hist.shape[0]
    candidates = np.stack([np.roll(target_hist, k) for k in range(bins)])
    scores = circular_emd(candidates, ring_hist)
    best = scores.max()
    shifts = np.arange(bins)
    signed = np.where(shifts > bins // 2, shifts - bins, shifts)
    tied = np.flatnonzero(scores >= best - 1e-9)
    return int(tied[np.argmin(np.abs(signed[tied]))])


def oha(
    image,
    target_mask,
    *,
    ring: float = 0.08,
    bins: int = 72,
    feather: float = 0.005,
    strength: float = 1.0,
    min_chroma: float = 2.0,
) -> np.ndarray:
    """Rotate the target's hues away from its surround's, keeping intensity and chroma.

    Args:
        image: (H, W, 3) float RGB in [0, 1] (uint8 is scaled by 1/255).
        target_mask: (H, W) or (H, W, 1), bool or [0, 1].
        ring: width of the surrounding ring, as a fraction of the image diagonal.
        bins: hue histogram bins (the rotation is searched in steps of 360/bins degrees).
        feather: width of the soft edge of the target, as a fraction of the diagonal.
        strength: fraction of the chosen rotation to apply (1 = all of it).
        min_chroma: pixels with CIELAB chroma below this count as grey (no hue) in the
            histograms.

    Returns:
        The edited image, (H, W, 3) float32 in [0, 1].

    Example:
        >>> edited = oha(image, mask, ring=0.1)
    """
    img, mask = check_pair(image, target_mask)
    ring = check_strength("ring", ring, 0.0)
    feather = check_strength("feather", feather, 0.0)
    strength = check_strength("strength", strength, 0.0, 1.0)
    bins = int(check_strength("bins", bins, 4.0, 3600.0))
    min_chroma = check_strength("min_chroma", min_chroma, 0.0)

    lab = rgb_to_lab(img).astype(np.float64)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    hue = np.arctan2(lab[..., 2], lab[..., 1])

    target = mask > 0.5
    radius = max(1, int(round(scale_sigma(img, ring))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    ring_mask = cv2.dilate(target.astype(np.uint8), kernel).astype(bool) & ~target
    if not ring_mask.any():
        ring_mask = ~target
    if not ring_mask.any():
        return finish(img)

    weight = np.where(chroma >= min_chroma, chroma, 0.0)
    t_hist = hue_histogram(hue[target], weight[target], bins)
    r_hist = hue_histogram(hue[ring_mask], weight[ring_mask], bins)
    if t_hist.sum() == 0 or r_hist.sum() == 0:
        return finish(img)

    shift = best_rotation(t_hist, r_hist)
    signed = shift - bins if shift > bins // 2 else shift
    theta = strength * signed * 2 * np.pi / bins

    w = soft_weight(mask, scale_sigma(img, feather) if feather > 0 else 0.0).astype(np.float64)
    new_hue = hue + theta * w
    out = lab.copy()
    out[..., 1] = chroma * np.cos(new_hue)
    out[..., 2] = chroma * np.sin(new_hue)
    return finish(lab_to_rgb(out))
