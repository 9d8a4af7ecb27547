"""Operator rule: one fixed, hand-set photographic edit under feathered masks (our baseline).

Not from a paper: the simplest thing the parametric peers (GazeShiftNet, Mejjati et al.,
ECCV 2020; Realistic Saliency Guided Image Enhancement, Miangoleh et al., CVPR 2023) could
learn, so that every table shows how far learning takes the operators beyond a recipe.

Inside the target (the region to emphasize) it applies ``emphasize`` settings, outside it
the ``deemphasize`` settings, each as exposure (EV), saturation and contrast factors. The
mask is feathered with a Gaussian of ``feather`` times the shorter side, and the settings
are blended per pixel in their own units (EV and log factors), so the edit changes
smoothly across the feathered edge. Operators run in the operator head's order:
exposure, then contrast about mid-grey, then saturation about Rec. 601 luma.

Defaults (the rule measured in the issue that introduced it): emphasized +0.5 EV,
saturation x1.4, contrast x1.25; de-emphasized -0.5 EV, saturation x0.5, contrast x0.75;
feather 3% of the shorter side.
"""

from __future__ import annotations

import numpy as np

from sagim_tf.baselines._common import blur, check_pair, check_strength, finish
from sagim_tf.utils.errors import InputError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
DEFAULT_EMPHASIZE = {"ev": 0.5, "saturation": 1.4, "contrast": 1.25}
DEFAULT_DEEMPHASIZE = {"ev": -0.5, "saturation": 0.5, "contrast": 0.75}


def _settings(name: str, given) -> dict:
    out = dict(DEFAULT_EMPHASIZE if name == "emphasize" else DEFAULT_DEEMPHASIZE)
    for key, value in dict(given or {}).items():
        if key not in out:
            raise InputError(f"{name}: unknown setting {key!r}; known: {', '.join(out)}")
        lo, hi = (-3.0, 3.0) if key == "ev" else (0.0, 4.0)
        out[key] = check_strength(f"{name}.{key}", value, lo, hi)
        if key != "ev" and out[key] <= 0:
            raise InputError(f"{name}.{key}: must be > 0, got {value!r}")
    return out


def operator_rule(
    image,
    target_mask,
    *,
    emphasize=None,
    deemphasize=None,
    feather: float = 0.03,
) -> np.ndarray:
    """Brighten, saturate and add contrast inside the target; the reverse outside.

    Args:
        image: (H, W, 3) float RGB in [0, 1] (uint8 is scaled by 1/255).
        target_mask: (H, W) or (H, W, 1), bool or [0, 1].
        emphasize: dict. Settings inside the target: ``ev``, ``saturation``,
            ``contrast``. Defaults to ``{"ev": 0.5, "saturation": 1.4, "contrast": 1.25}``;
            keys not given keep their default.
        deemphasize: dict. Settings outside the target. Defaults to
            ``{"ev": -0.5, "saturation": 0.5, "contrast": 0.75}``.
        feather: float. Gaussian sigma of the mask's soft edge, as a fraction of the
            shorter side. Defaults to ``0.03``.

    Returns:
        The edited image, (H, W, 3) float32 in [0, 1].
    """
    img, mask = check_pair(image, target_mask)
    inside, outside = _settings("emphasize", emphasize), _settings("deemphasize", deemphasize)
    feather = check_strength("feather", feather, 0.0, 1.0)
    w = np.clip(blur(mask, feather * min(img.shape[:2])), 0.0, 1.0)[..., None]

    def field(key, log=True):
        a, b = inside[key], outside[key]
        if log:
            return np.exp2(w * np.log2(a) + (1.0 - w) * np.log2(b))
        return w * a + (1.0 - w) * b

    x = img * np.exp2(field("ev", log=False))
    x = x + (x - 0.5) * (field("contrast") - 1.0)
    y = (x * LUMA).sum(-1, keepdims=True)
    x = x + (x - y) * (field("saturation") - 1.0)
    return finish(x)
