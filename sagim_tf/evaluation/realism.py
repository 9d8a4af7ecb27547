"""How photographic an edit is: the non-affine share of the edit, and the colour cast outside.

**Non-affine share.** A photographer's tools (exposure, white balance, saturation, tone
curves) change a pixel's colour as a smooth function of its own colour, which inside a
small window is close to an affine map of the original RGB. Colour fringes, ringing,
halos and invented texture are not. So, in each window of radius ``r`` around every
pixel, we fit the edit ``d = edited - original`` (per output channel) as an affine
function of the original's RGB, ``d ~ A_k · I + b_k``, by ridge-regularised least squares
(the guided filter's local model, He, Sun and Tang, ECCV 2010 / TPAMI 2013; Luan, Paris,
Shechtman and Bala's photorealism term in "Deep Photo Style Transfer", CVPR 2017, rests
on the same local affine model), average each pixel's coefficients over the windows that
hold it, and report

* ``share``: the fraction of the edit's energy the local affine model cannot explain,
  ``sum(residual^2) / sum(d^2)`` (0 for no edit), and
* ``rms``: the residual's root mean square in 8-bit levels.

A global or slowly varying colour transform scores near 0; added noise scores near 1.
With box filters the cost is O(pixels) whatever ``r`` is.

**Colour cast outside.** The mean CIELAB ΔE (CIE76) between original and edit over the
pixels outside the guided regions (O_low ∪ O_high): what the edit did where it was not
asked to do anything.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_cie76, rgb2lab

from sagim_tf.utils.checks import check_image
from sagim_tf.utils.errors import InputError

#: Window radius as a fraction of the image's shorter side (2%: 4 px at 256x192).
DEFAULT_RADIUS_FRACTION = 0.02
#: Ridge term of the local fit, in squared [0, 1] intensity units (the guided filter's
#: epsilon): a window whose RGB varies by less than about 0.01 is fitted by its mean.
DEFAULT_EPS = 1e-4


def default_radius(height: int, width: int, fraction: float = DEFAULT_RADIUS_FRACTION) -> int:
    """The window radius for an image of this size: ``fraction`` of its shorter side, >= 1."""
    return max(1, int(round(fraction * min(height, width))))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, mirrored at the borders (numpy's ``reflect``)."""
    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT_101)


def _inverse_3x3(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 3, 3) symmetric positive definite matrices, by the adjugate."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    e, f, i = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    co = np.stack(
        [e * i - f * f, c * f - b * i, b * f - c * e, a * i - c * c, b * c - a * f, a * e - b * b],
        -1,
    )
    det = a * co[..., 0] + b * co[..., 1] + c * co[..., 2]
    inv = np.empty(m.shape, m.dtype)
    for (r, s), j in {(0, 0): 0, (0, 1): 1, (0, 2): 2, (1, 1): 3, (1, 2): 4, (2, 2): 5}.items():
        inv[..., r, s] = inv[..., s, r] = co[..., j] / det
    return inv


class Reference:
    """One original image, with what the measures need of it computed once.

    An evaluation scores several edits of each image; the original's window means, the
    inverses of its local colour covariances and its CIELAB values do not depend on the
    edit, so they are computed on first use and kept.

    Args:
        original: (H, W, 3) float image in [0, 1].
        radius: int. Window radius in pixels. Defaults to 2% of the shorter side.
        eps: float. Ridge term of each window's fit. Defaults to ``1e-4``.
    """

    def __init__(self, original, radius: int | None = None, eps: float = DEFAULT_EPS):
        self.image = check_image(original, "original").astype(np.float64)
        if self.image.ndim != 3:
            raise InputError(f"realism: expected one (H, W, 3) original, got {self.image.shape}")
        h, w = self.image.shape[:2]
        self.radius = default_radius(h, w) if radius is None else int(radius)
        self.eps = float(eps)
        self._fit = None
        self._lab = None

    def _edited(self, edited) -> np.ndarray:
        p = check_image(edited, "edited").astype(np.float64)
        if p.shape != self.image.shape:
            raise InputError(
                f"realism: original {self.image.shape} and edited {p.shape} must be one "
                "(H, W, 3) image each, of the same size"
            )
        return p

    def _local_fit(self):
        """The original's window means and inverse ridge covariances, (H, W, 3[, 3])."""
        if self._fit is None:
            i, r = self.image, self.radius
            h, w = i.shape[:2]
            if r < 1 or 2 * r + 1 > min(h, w):
                raise InputError(f"realism: window radius {r} does not fit a {w}x{h} image")
            mean_i = _box(i, r)
            cov = np.empty((h, w, 3, 3))
            for k in range(3):
                for m in range(k, 3):
                    cov[..., k, m] = cov[..., m, k] = (
                        _box(i[..., k] * i[..., m], r) - mean_i[..., k] * mean_i[..., m]
                    )
            cov += self.eps * np.eye(3)
            self._fit = (mean_i, _inverse_3x3(cov))
        return self._fit

    def residual(self, edited) -> np.ndarray:
        """The part of ``edited - original`` no local affine colour map explains, float64
        (H, W, 3)."""
        p = self._edited(edited)
        mean_i, inv = self._local_fit()
        i, r = self.image, self.radius
        d = p - i
        fitted = np.empty_like(d)
        for c in range(3):
            mean_d = _box(d[..., c], r)
            cross = _box(i * d[..., c : c + 1], r) - mean_i * mean_d[..., None]
            a = np.einsum("hwkm,hwm->hwk", inv, cross)
            b = mean_d - np.einsum("hwk,hwk->hw", a, mean_i)
            fitted[..., c] = np.einsum("hwk,hwk->hw", _box(a, r), i) + _box(b, r)
        return d - fitted

    def non_affine(self, edited) -> dict:
        """``{"share": ..., "rms": ...}`` of one edit (see :func:`non_affine`)."""
        residual = self.residual(edited)
        d = self._edited(edited) - self.image
        energy = float(np.sum(d * d))
        unexplained = float(np.sum(residual * residual))
        share = 0.0 if energy <= 1e-12 else min(1.0, unexplained / energy)
        return {"share": share, "rms": 255.0 * float(np.sqrt(unexplained / residual.size))}

    def colour_cast_outside(self, edited, inside) -> float:
        """Mean CIELAB ΔE of one edit where ``inside`` is 0 (see :func:`colour_cast_outside`)."""
        p = self._edited(edited)
        mask = np.asarray(inside)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != self.image.shape[:2]:
            raise InputError(
                f"colour cast: original {self.image.shape}, edited {p.shape} and mask "
                f"{mask.shape} must share H and W"
            )
        outside = mask == 0
        if not outside.any():
            return 0.0
        if self._lab is None:
            self._lab = rgb2lab(self.image)
        return float(deltaE_cie76(self._lab, rgb2lab(p))[outside].mean())


def local_affine_residual(
    original, edited, radius: int | None = None, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """The part of ``edited - original`` that no local affine colour map explains.

    Args:
        original: (H, W, 3) float image in [0, 1].
        edited: (H, W, 3) float image in [0, 1], the same size.
        radius: int. Window radius in pixels. Defaults to 2% of the shorter side.
        eps: float. Ridge term of each window's fit. Defaults to ``1e-4``.

    Returns:
        The residual, float64 (H, W, 3).
    """
    return Reference(original, radius, eps).residual(edited)


def non_affine(original, edited, radius: int | None = None, eps: float = DEFAULT_EPS) -> dict:
    """``{"share": ..., "rms": ...}``: the unexplained share of the edit's energy, and the
    residual's RMS in 8-bit levels (see the module docstring). No edit scores 0.

    To score several edits of one image, build one :class:`Reference` and call its
    ``non_affine``: the original's part of the fit is then computed once."""
    return Reference(original, radius, eps).non_affine(edited)


def colour_cast_outside(original, edited, inside) -> float:
    """Mean CIELAB ΔE (CIE76) between ``original`` and ``edited`` where ``inside`` is 0.

    Args:
        original, edited: (H, W, 3) images in [0, 1].
        inside: (H, W) or (H, W, 1) mask of the guided regions (O_low ∪ O_high), nonzero
            inside. Returns 0.0 when every pixel is inside.
    """
    return Reference(original).colour_cast_outside(edited, inside)
