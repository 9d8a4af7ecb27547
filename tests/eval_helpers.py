"""Small synthetic scenes and classical judges shared by the evaluation and baseline tests.

The judges are test-local stand-ins for the project's estimators: a batch callable
(B, H, W, 3) in [0, 1] -> (B, H, W, 1) in [0, 1], like every estimator spec.
"""

from __future__ import annotations

import cv2
import numpy as np


def _per_image(fn):
    def judge(images):
        images = np.asarray(images, dtype=np.float32)
        return np.stack([fn(img) for img in images])[..., None].astype(np.float32)

    return judge


def _spectral_residual(img):
    sr = cv2.saliency.StaticSaliencySpectralResidual_create()
    bgr = np.ascontiguousarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1])
    ok, m = sr.computeSaliency(bgr)
    assert ok
    m = cv2.resize(
        m.astype(np.float32), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR
    )
    m = cv2.GaussianBlur(m, (0, 0), 3)
    return np.clip(m / (m.max() + 1e-9), 0, 1)


def _lab_contrast(img):
    """Colour contrast of each pixel against its wide surround, in CIELAB."""
    lab = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2Lab)
    centre = cv2.GaussianBlur(lab, (0, 0), 2)
    surround = cv2.GaussianBlur(lab, (0, 0), 20)
    d = np.linalg.norm(centre - surround, axis=-1)
    return np.clip(d / (d.max() + 1e-9), 0, 1)


spectral_residual_judge = _per_image(_spectral_residual)
lab_contrast_judge = _per_image(_lab_contrast)
JUDGES = {"spectral-residual": spectral_residual_judge, "lab-contrast": lab_contrast_judge}

SCENES = {
    # grey background, a dull warm-grey target, a vivid red distractor
    "grey": ((0.5, 0.5, 0.5), (0.56, 0.5, 0.44), (0.9, 0.1, 0.1)),
    # green background, a target camouflaged in a similar green, a vivid red distractor
    "green": ((0.3, 0.55, 0.3), (0.35, 0.6, 0.3), (0.9, 0.1, 0.1)),
}


def scene(kind="grey", h=96, w=128, noise=0.02, seed=0, swap=False):
    """(image, target mask, distractor mask): two square objects on a flat background."""
    bg, target, distractor = SCENES[kind]
    rng = np.random.default_rng(seed)
    img = np.ones((h, w, 3), np.float32) * np.asarray(bg, np.float32)
    s = min(h, w) * 3 // 8
    y = (h - s) // 2
    left, right = w // 8, w - w // 8 - s
    if swap:
        left, right = right, left
    t = np.zeros((h, w), bool)
    d = np.zeros((h, w), bool)
    t[y : y + s, left : left + s] = True
    d[y : y + s, right : right + s] = True
    img[t] = target
    img[d] = distractor
    img = np.clip(img + noise * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    return img, t, d


def records(n=4, h=64, w=80):
    """SAM-like records: O_low is the dull target, O_high the vivid distractor."""
    out = []
    for i in range(n):
        img, t, d = scene("grey" if i % 2 == 0 else "green", h, w, seed=i, swap=bool(i // 2))
        guidance = cv2.GaussianBlur(
            t.astype(np.float32) * 0.9 + d.astype(np.float32) * 0.2, (0, 0), 2
        )
        guidance = guidance / guidance.max()
        out.append(
            {
                "id": f"synthetic-{i}",
                "image": img,
                "guidance": guidance[..., None],
                "guidance_binary": t[..., None].astype(np.float32),
                "mask_low": t,
                "mask_high": d,
            }
        )
    return out
