"""WSR: saliency retargeting by luminance, saturation and sharpness (Wong & Low, 2011).

Reference:
    L.-K. Wong and K.-L. Low, "Saliency retargeting: An approach to enhance image
    aesthetics", IEEE Workshop on Applications of Computer Vision (WACV), 2011.

Principle (from the paper): the salience of a region rises with its mean luminance, colour
saturation and sharpness relative to the rest of the image. To move attention to a target,
raise those three in the target and lower them in the regions that compete with it.

What we simplified:
    * Wong & Low segment the image, estimate each segment's saliency and search for the
      adjustment amounts that make the target the most salient segment while staying
      "aesthetic". We apply fixed, user-set amounts (the keyword arguments) in one pass, with
      no segmentation, no saliency estimator in the loop and no aesthetic term.
    * The target comes as a binary mask (the SAM binary guidance, the mask of O_low). Its
      edge is feathered with a Gaussian falloff so that no seam appears; everything outside
      the feathered target is treated as "surround" and lowered, rather than only the
      segments the paper judged to compete.
    * Luminance and saturation are edited in CIELAB (L*, and chroma by scaling a* and b*)
      instead of HSV; sharpness is raised by an unsharp mask on L* and lowered by Gaussian
      blurring (of all three Lab channels) outside.
"""

from __future__ import annotations

import numpy as np

from sagim_tf.baselines._common import (
    blur,
    check_pair,
    check_strength,
    finish,
    lab_to_rgb,
    rgb_to_lab,
    scale_sigma,
    soft_weight,
)


def wsr(
    image,
    target_mask,
    *,
    luminance: float = 0.25,
    saturation: float = 0.8,
    sharpness: float = 1.5,
    suppress: float = 0.5,
    falloff: float = 0.03,
    detail_sigma: float = 2.0,
) -> np.ndarray:
    """Raise luminance, saturation and sharpness in the target; lower them around it.

    Args:
        image: (H, W, 3) float RGB in [0, 1] (uint8 is scaled by 1/255).
        target_mask: (H, W) or (H, W, 1), bool or [0, 1] (soft masks act as weights).
        luminance: inside, L* moves this fraction of the way to white; outside, L* is scaled
            by ``1 - luminance * suppress``.
        saturation: inside, chroma is scaled by ``1 + saturation``; outside by
            ``1 - saturation * suppress`` (never below 0).
        sharpness: gain of the unsharp mask inside; outside, the image is blended towards its
            blur by ``min(1, sharpness * suppress)``.
        suppress: strength of the lowering outside relative to the raising inside (0 edits
            the target only).
        falloff: width of the soft edge around the target, as a fraction of the image
            diagonal.
        detail_sigma: Gaussian sigma (pixels) of the unsharp mask and of the outside blur.

    Returns:
        The edited image, (H, W, 3) float32 in [0, 1].

    Example:
        >>> edited = wsr(image, mask, luminance=0.3)
    """
    img, mask = check_pair(image, target_mask)
    luminance = check_strength("luminance", luminance, 0.0, 1.0)
    saturation = check_strength("saturation", saturation, 0.0)
    sharpness = check_strength("sharpness", sharpness, 0.0)
    suppress = check_strength("suppress", suppress, 0.0, 1.0)
    falloff = check_strength("falloff", falloff, 0.0)
    detail_sigma = check_strength("detail_sigma", detail_sigma, 0.0)

    w = soft_weight(mask, scale_sigma(img, falloff) if falloff > 0 else 0.0)[..., None]
    out_w = 1.0 - w

    lab = rgb_to_lab(img)
    lab_blur = blur(lab, detail_sigma)

    # Sharpness: unsharp mask inside, blur outside.
    detail = lab[..., :1] - lab_blur[..., :1]
    lab[..., :1] += sharpness * w * detail
    alpha = min(1.0, sharpness * suppress) * out_w
    lab = lab + alpha * (lab_blur - lab)

    # Luminance: towards white inside, darker outside.
    L = lab[..., :1]
    L = L + luminance * w * (100.0 - L)
    L = L * (1.0 - luminance * suppress * out_w)
    lab[..., :1] = np.clip(L, 0.0, 100.0)

    # Saturation: scale chroma (a*, b*) up inside, down outside; hue is kept.
    gain = (1.0 + saturation * w) * np.maximum(0.0, 1.0 - saturation * suppress * out_w)
    lab[..., 1:] *= gain

    return finish(lab_to_rgb(lab))
