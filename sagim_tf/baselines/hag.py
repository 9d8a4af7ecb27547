"""HAG: saliency-based editing by point variation of intensity and colour (Hagiwara et al., 2011).

Reference:
    A. Hagiwara, A. Sugimoto and K. Kawamoto, "Saliency-based image editing for guiding
    visual attention", Proc. 1st International Workshop on Pervasive Eye Tracking & Mobile
    Eye-Based Interaction (PETMEI), 2011.

Principle (from the paper, as summarised in SaGIM §2): the saliency map is computed from
intensity and colour features (Itti-Koch style), and how much a feature raises the salience
of a location is governed by its *point variation*, the degree to which the feature changes
in a local image area. Editing therefore raises the point variation of intensity and colour
in the region to attend to and lowers it elsewhere.

What we simplified:
    * Features are the three Itti-Koch-style opponent channels, intensity
      ``I = (R+G+B)/3``, red-green ``RG = R-G`` and blue-yellow ``BY = B-(R+G)/2``, at one
      scale; the paper works on the pyramid of the Itti model.
    * Point variation of a feature F is ``F - Gaussian(F, surround)``, the deviation of a
      pixel from its Gaussian-weighted surround, instead of the paper's multi-scale
      centre-surround differences.
    * The paper iterates, re-estimating saliency until the target becomes salient enough.
      We run a fixed number of iterations, each multiplying the point variation by
      ``1 + gain_in`` inside the (feathered) target and by ``1 - gain_out`` outside, then
      mapping back to RGB and clipping to the gamut; no saliency estimator is in the loop.
"""

from __future__ import annotations

import numpy as np

from sagim_tf.baselines._common import (
    blur,
    check_pair,
    check_strength,
    finish,
    scale_sigma,
    soft_weight,
)
from sagim_tf.utils.errors import InputError

# RGB -> (I, RG, BY) and back.
_FWD = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [-0.5, -0.5, 1.0]], dtype=np.float32)
_INV = np.linalg.inv(_FWD.astype(np.float64)).astype(np.float32)


def to_opponent(img: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> intensity, red-green, blue-yellow channels (H, W, 3)."""
    return img @ _FWD.T


def from_opponent(feat: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_opponent`."""
    return feat @ _INV.T


def point_variation(feat: np.ndarray, surround_sigma: float) -> np.ndarray:
    """Deviation of each pixel's features from their Gaussian-weighted surround."""
    return feat - blur(feat, surround_sigma)


def hag(
    image,
    target_mask,
    *,
    gain_in: float = 0.6,
    gain_out: float = 0.25,
    channel_weights=(1.0, 1.0, 1.0),
    iterations: int = 3,
    surround: float = 0.1,
    falloff: float = 0.03,
) -> np.ndarray:
    """Raise the point variation of intensity and colour in the target, lower it outside.

    Args:
        image: (H, W, 3) float RGB in [0, 1] (uint8 is scaled by 1/255).
        target_mask: (H, W) or (H, W, 1), bool or [0, 1] (soft masks act as weights).
        gain_in: per iteration, point variation inside is multiplied by ``1 + gain_in``.
        gain_out: per iteration, point variation outside is multiplied by ``1 - gain_out``.
        channel_weights: relative strength for (intensity, red-green, blue-yellow).
        iterations: number of modulation passes (point variation is recomputed each time).
        surround: Gaussian sigma of the surround, as a fraction of the image diagonal.
        falloff: width of the soft edge of the target, as a fraction of the diagonal.

    Returns:
        The edited image, (H, W, 3) float32 in [0, 1].

    Example:
        >>> edited = hag(image, mask, gain_in=0.8, iterations=4)
    """
    img, mask = check_pair(image, target_mask)
    gain_in = check_strength("gain_in", gain_in, 0.0)
    gain_out = check_strength("gain_out", gain_out, 0.0, 1.0)
    surround = check_strength("surround", surround, 1e-6)
    falloff = check_strength("falloff", falloff, 0.0)
    iterations = int(check_strength("iterations", iterations, 0.0, 100.0))
    cw = np.asarray(channel_weights, dtype=np.float32).reshape(-1)
    if cw.shape != (3,) or not np.isfinite(cw).all() or (cw < 0).any():
        raise InputError(
            f"channel_weights: expected 3 non-negative numbers, got {channel_weights!r}"
        )

    w = soft_weight(mask, scale_sigma(img, falloff) if falloff > 0 else 0.0)[..., None]
    sigma = scale_sigma(img, surround)
    # Factor applied to the point variation: +gain_in inside, -gain_out outside.
    factor = (gain_in * w - gain_out * (1.0 - w)) * cw

    out = img
    for _ in range(iterations):
        feat = to_opponent(out)
        pv = point_variation(feat, sigma)
        out = np.clip(from_opponent(feat + factor * pv), 0.0, 1.0).astype(np.float32)
    return finish(out)
