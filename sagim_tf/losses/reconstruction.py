"""L_rec: the edited image's saliency must match the guiding map (paper eq. 1)."""

from keras import ops


def reconstruction_loss(guidance, predicted, epsilon=1e-6):
    """Mean binary cross-entropy between the guiding map and E(edited image).

    ``-[S log S^ + (1 - S) log(1 - S^)]`` averaged over all pixels and images. Eq. (1) in
    the paper writes ``(1 - log S^)`` in the second term, a typo; standard BCE, as in
    SalGAN, is meant. ``predicted`` is clipped to [epsilon, 1 - epsilon].

    Args:
        guidance: S_guiding, (B, H, W, 1) in [0, 1].
        predicted: S_edited = E(edited), same shape, in [0, 1].

    Returns:
        A scalar. Its minimum over ``predicted`` is the entropy of ``guidance``, reached at
        ``predicted == guidance`` (zero for binary guidance).
    """
    s = ops.cast(guidance, "float32")
    p = ops.clip(ops.cast(predicted, "float32"), epsilon, 1.0 - epsilon)
    return -ops.mean(s * ops.log(p) + (1.0 - s) * ops.log(1.0 - p))
