"""L_adv: D tells originals from edits; G learns to fool it (paper eq. 5)."""

from keras import ops


def _bce_with_logits(logits, target):
    logits = ops.cast(logits, "float32")
    # max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any logit.
    return ops.mean(ops.relu(logits) - logits * target + ops.log1p(ops.exp(-ops.abs(logits))))


def discriminator_loss(real_logits, fake_logits):
    """D's objective: BCE(D(I), 1) + BCE(D(I~), 0), on patch logits."""
    return _bce_with_logits(real_logits, 1.0) + _bce_with_logits(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits):
    """G's non-saturating objective: BCE(D(I~), 1), i.e. maximise log D(I~)."""
    return _bce_with_logits(fake_logits, 1.0)
