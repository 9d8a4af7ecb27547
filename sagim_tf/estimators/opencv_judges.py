"""Independent judges: OpenCV contrib's static saliency estimators, for evaluation only.

SaGIM is trained to fool its own estimator E, so its results must also be judged by
estimators it never saw (paper §4.3 uses DeepGaze for this). OpenCV contrib's
``cv2.saliency`` ships two classical ones written by others:

* ``spectral-residual``: Hou and Zhang, "Saliency Detection: A Spectral Residual
  Approach", CVPR 2007;
* ``fine-grained``: Montabone and Soto, "Human detection using a mobile platform and novel
  features derived from a visual saliency mechanism", Image and Vision Computing 2010.

They run in NumPy/OpenCV, so they are **not differentiable** (``differentiable`` is False)
and must never be used as the training estimator. They take the same call as every
estimator: images (B, H, W, 3) RGB in [0, 1] (NumPy or tensors) -> maps (B, H, W, 1)
float32 in [0, 1], each map min-max scaled per image (a map with no contrast is all zero).
"""

from __future__ import annotations

import cv2
import numpy as np

from sagim_tf.estimators.registry import register_estimator
from sagim_tf.utils.errors import ConfigError, InputError

_METHODS = {
    "spectral-residual": "StaticSaliencySpectralResidual_create",
    "fine-grained": "StaticSaliencyFineGrained_create",
}


class OpenCVSaliencyJudge:
    """An OpenCV static saliency estimator with the estimator call shape; not differentiable.

    Args:
        method: ``"spectral-residual"`` or ``"fine-grained"``.
        min_contrast: maps whose max - min is below this are returned as zeros, so that a
            featureless image is not stretched into noise.

    Example:
        >>> judge = OpenCVSaliencyJudge("spectral-residual")
        >>> maps = judge(np.random.rand(2, 96, 128, 3).astype("float32"))
        >>> maps.shape, judge.differentiable
        ((2, 96, 128, 1), False)

    Reference:
        X. Hou and L. Zhang, CVPR 2007 (spectral residual); S. Montabone and A. Soto,
        Image and Vision Computing 28(3), 2010 (fine-grained); OpenCV contrib ``saliency``.
    """

    differentiable = False
    trainable = False

    def __init__(self, method: str = "spectral-residual", min_contrast: float = 1e-2):
        if method not in _METHODS:
            raise ConfigError(
                f"unknown OpenCV saliency method {method!r}; known: {', '.join(_METHODS)}"
            )
        try:
            self._create = getattr(cv2.saliency, _METHODS[method])
        except AttributeError as exc:  # pragma: no cover - depends on install
            raise ConfigError(
                f"{method}: needs cv2.saliency from opencv-contrib-python-headless ({exc})"
            ) from exc
        self.method = method
        self.name = method.replace("-", "_")
        self.min_contrast = float(min_contrast)

    def _one(self, image: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(
            (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[..., ::-1]
        )
        ok, sal = self._create().computeSaliency(bgr)
        if not ok or sal is None:
            raise InputError(
                f"{self.method}: OpenCV could not compute a map for a {image.shape} image"
            )
        sal = np.asarray(sal, dtype=np.float32)
        if sal.max() > 1.0:  # some OpenCV builds return uint8-scaled maps
            sal = sal / 255.0
        lo, hi = float(sal.min()), float(sal.max())
        if hi - lo < self.min_contrast:
            return np.zeros(image.shape[:2], np.float32)
        return (sal - lo) / (hi - lo)

    def __call__(self, images, training=False):
        """Maps for a batch (B, H, W, 3) or a single image (H, W, 3) -> (B, H, W, 1) / (H, W, 1)."""
        x = np.asarray(images, dtype=np.float32)
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"{self.method}: expected images (B, H, W, 3), got {x.shape}")
        maps = np.stack([self._one(img) for img in x])[..., None].astype(np.float32)
        return maps[0] if single else maps

    predict = __call__

    def __repr__(self):
        return f"OpenCVSaliencyJudge({self.method!r}, differentiable=False)"


register_estimator(
    "spectral-residual",
    lambda: OpenCVSaliencyJudge("spectral-residual"),
    help="judge only (not differentiable): OpenCV spectral residual (Hou and Zhang 2007)",
)
register_estimator(
    "fine-grained",
    lambda: OpenCVSaliencyJudge("fine-grained"),
    help="judge only (not differentiable): OpenCV fine-grained (Montabone and Soto 2010)",
)
