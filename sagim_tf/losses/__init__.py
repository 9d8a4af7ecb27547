"""The five SaGIM losses (paper §3.2-3.4), one module each, with their names and weights.

:data:`LOSS_NAMES` and :data:`PAPER_LOSS_WEIGHTS` are the one definition of the terms and
of the paper's weights (5:5:1:9:5); configs, the training step and the reports read them
from here. The loss functions are imported lazily, so reading the two constants does not
import Keras.
"""

from __future__ import annotations

from sagim_tf.utils.lazy import lazy_exports

#: The loss terms, in the paper's order: reconstruction (saliency), content, color, cycle,
#: adversarial.
LOSS_NAMES = ("rec", "content", "color", "cycle", "adv")

#: The paper's weights lambda (rec:content:color:cycle:adv = 5:5:1:9:5, §3.4).
PAPER_LOSS_WEIGHTS = {"rec": 5.0, "content": 5.0, "color": 1.0, "cycle": 9.0, "adv": 5.0}

#: Terms beyond the paper's, off (weight 0) unless asked for: ``photorealism``, the local
#: affine residual of the edit (:mod:`sagim_tf.losses.photorealism`), ``locality``, the
#: change where the guidance asks for none (:mod:`sagim_tf.losses.locality`), and
#: ``settings``, a sparsity prior on the operator head's settings
#: (:mod:`sagim_tf.losses.settings`).
EXTRA_LOSS_NAMES = ("photorealism", "locality", "settings")
#: Every term G can be trained with, and the default weights: the paper's, extras off.
ALL_LOSS_NAMES = LOSS_NAMES + EXTRA_LOSS_NAMES
DEFAULT_LOSS_WEIGHTS = {**PAPER_LOSS_WEIGHTS, "photorealism": 0.0, "locality": 0.0, "settings": 0.0}

_LAZY = {
    "color_loss": "sagim_tf.losses.color",
    "content_loss": "sagim_tf.losses.content",
    "cycle_loss": "sagim_tf.losses.cycle",
    "discriminator_loss": "sagim_tf.losses.adversarial",
    "feature_mse": "sagim_tf.losses.content",
    "generator_adversarial_loss": "sagim_tf.losses.adversarial",
    "keep_weight": "sagim_tf.losses.locality",
    "locality_loss": "sagim_tf.losses.locality",
    "photorealism_loss": "sagim_tf.losses.photorealism",
    "reconstruction_loss": "sagim_tf.losses.reconstruction",
    "settings_loss": "sagim_tf.losses.settings",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["LOSS_NAMES", "PAPER_LOSS_WEIGHTS", *sorted(_LAZY)]
