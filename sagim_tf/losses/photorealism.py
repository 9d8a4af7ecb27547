"""L_photo: the part of an edit no local affine colour map explains, as a training loss.

The differentiable twin of :func:`sagim_tf.evaluation.realism.local_affine_residual`:
in each (2r+1)^2 window the edit ``d = edited - original`` is fitted, per channel, as a
ridge-regularised affine function of the original's RGB (the guided filter's local
model); each pixel's coefficients are averaged over the windows that hold it; the loss
is the mean squared residual. Exposure, white balance, saturation and smooth curves cost
almost nothing; fringes, halos and invented texture cost their energy. Not in the paper:
an option (``losses.photorealism``, default 0) for comparing "pixel-level G + this loss"
with the operator head on the same budget.
"""

from __future__ import annotations

from keras import ops


def _box(x, radius: int):
    """Mean over (2r+1)^2 windows with mirrored borders; (B, H, W, C) -> (B, H, W, C)."""
    k = 2 * radius + 1
    x = ops.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="reflect")
    return ops.average_pool(x, pool_size=k, strides=1, padding="valid")


def local_affine_residual(original, edited, radius: int = 4, eps: float = 1e-4):
    """The residual (B, H, W, 3) of the local affine fit of ``edited - original``.

    Args:
        original: (B, H, W, 3) images in [0, 1].
        edited: (B, H, W, 3) images in [0, 1].
        radius: int. Window radius in pixels (H and W must exceed it). Defaults to ``4``
            (2% of the shorter side of a 256x192 training crop).
        eps: float. Ridge term of each window's fit, in squared intensity units.
            Defaults to ``1e-4``.
    """
    i = ops.cast(original, "float32")
    d = ops.cast(edited, "float32") - i
    mean_i = _box(i, radius)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    prods = ops.concatenate([i[..., a : a + 1] * i[..., b : b + 1] for a, b in pairs], axis=-1)
    means = ops.concatenate([mean_i[..., a : a + 1] * mean_i[..., b : b + 1] for a, b in pairs], -1)
    cov = _box(prods, radius) - means
    ridge = ops.convert_to_tensor([eps, 0.0, 0.0, eps, 0.0, eps], "float32")
    s00, s01, s02, s11, s12, s22 = [cov[..., k] + ridge[k] for k in range(6)]
    # Inverse of the symmetric 3x3 covariance by its adjugate.
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    inv = [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
    fitted = []
    for c in range(3):
        dc = d[..., c : c + 1]
        mean_d = _box(dc, radius)
        cross = _box(i * dc, radius) - mean_i * mean_d
        a = [sum(inv[k][m] * cross[..., m] for m in range(3)) / det for k in range(3)]
        a = ops.stack(a, axis=-1)
        b = mean_d[..., 0] - ops.sum(a * mean_i, axis=-1)
        coef = _box(ops.concatenate([a, b[..., None]], axis=-1), radius)
        fitted.append(ops.sum(coef[..., :3] * i, axis=-1) + coef[..., 3])
    return d - ops.stack(fitted, axis=-1)


def photorealism_loss(original, edited, radius: int = 4, eps: float = 1e-4):
    """Mean squared local-affine residual of the edit (a scalar, float32)."""
    r = local_affine_residual(original, edited, radius, eps)
    return ops.mean(ops.square(r))
