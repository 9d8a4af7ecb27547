"""L_local: the edit stays where the guiding map asks for a change.

Not in the paper: an option (``losses.locality``, default 0 for the paper's experiment)
against an edit that drifts where nothing was asked for, e.g. an operator head that learns
to re-expose the whole frame. Where the guiding map agrees with E's map of the photo
(``|S_guiding - E(I)|`` below ``tolerance``), the guidance asks for no change, so any
change there is penalised:

    w = clip(1 - |S_guiding - E(I)| / tolerance, 0, 1)
    L_local = mean over pixels of  w * mean over channels |I~ - I|

Inside a guided region the two maps differ and ``w`` falls to 0, so the term leaves the
edit the guidance asks for free. With a binary guiding map (O_low's mask), the map says
"nothing outside O_low matters", ``w`` is small wherever E(I) is not, and the term
constrains little: the guidance itself asks to lower everything else.
"""

from __future__ import annotations

from keras import ops

#: The guidance-saliency difference at which a pixel counts as asked to change.
DEFAULT_TOLERANCE = 0.1


def keep_weight(guidance, saliency, tolerance: float = DEFAULT_TOLERANCE):
    """``clip(1 - |guidance - saliency| / tolerance, 0, 1)``, (B, H, W, 1), float32.

    1 where the guiding map equals E's map of the photo (no change asked), 0 where they
    differ by ``tolerance`` or more.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    diff = ops.abs(ops.cast(guidance, "float32") - ops.cast(saliency, "float32"))
    return ops.clip(1.0 - diff / float(tolerance), 0.0, 1.0)


def locality_loss(original, edited, guidance, saliency, tolerance: float = DEFAULT_TOLERANCE):
    """L_local, averaged over the batch (see the module docstring).

    Args:
        original: I, (B, H, W, 3) in [0, 1].
        edited: I~, same shape.
        guidance: S_guiding, (B, H, W, 1) in [0, 1].
        saliency: E(I), (B, H, W, 1) in [0, 1], a constant (no gradient is needed).
        tolerance: float. See :func:`keep_weight`. Defaults to :data:`DEFAULT_TOLERANCE`.
    """
    w = keep_weight(guidance, saliency, tolerance)
    change = ops.mean(ops.abs(ops.cast(edited, "float32") - ops.cast(original, "float32")), -1)
    return ops.mean(w[..., 0] * change)
