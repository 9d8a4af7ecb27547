"""The five SaGIM losses (paper §3.2-3.4), one module each."""

from sagim_tf.losses.adversarial import discriminator_loss, generator_adversarial_loss
from sagim_tf.losses.color import color_loss
from sagim_tf.losses.content import content_loss, feature_mse
from sagim_tf.losses.cycle import cycle_loss
from sagim_tf.losses.reconstruction import reconstruction_loss

LOSS_NAMES = ("rec", "content", "color", "cycle", "adv")
PAPER_LOSS_WEIGHTS = {"rec": 5.0, "content": 5.0, "color": 1.0, "cycle": 9.0, "adv": 5.0}

__all__ = [
    "LOSS_NAMES",
    "PAPER_LOSS_WEIGHTS",
    "color_loss",
    "content_loss",
    "cycle_loss",
    "discriminator_loss",
    "feature_mse",
    "generator_adversarial_loss",
    "reconstruction_loss",
]
