"""L_settings: a sparsity prior on the operator head's settings (not in the paper).

The operator head edits through settings (exposure, contrast, saturation, ...) that are
``range * tanh(field)`` per pixel. A change of the whole frame costs it one bias, so under
the saliency loss alone it drifts: a demo model moved the frame by ΔE 3.5 where the
guiding map asked for nothing, as much as the residual head. This term charges every
setting for its distance from "no edit", in units of its own range:

    L_settings = mean over pixels and operators of |tanh(field)|

An L1 prior, like the lasso: it pulls the settings the saliency loss has little use for to
exactly zero and shrinks the rest by a constant, so the edit concentrates where the
guidance asks for one, and extreme settings (a blue glow at saturation x1.5) cost more than
mild ones. It applies to the operator head only; with the residual head the term is
refused (:class:`~sagim_tf.models.sagim.SaGIM` raises ``ConfigError``).
"""

from __future__ import annotations

from keras import ops


def settings_loss(fields):
    """L_settings of raw operator fields (B, H, W, K): the mean of ``|tanh(fields)|``."""
    return ops.mean(ops.abs(ops.tanh(ops.cast(fields, "float32"))))
