"""sagim_tf: saliency-guided image manipulation (SaGIM, BMVC 2019) in TensorFlow/Keras.

SaGIM edits a photo so that its predicted saliency follows a guiding map ("Guide Your Eyes:
Learning Image Manipulation under Saliency Guidance", Yen-Chung Chen, Keng-Jui Chang,
Yi-Hsuan Tsai, Yu-Chiang Frank Wang and Wei-Chen Chiu, BMVC 2019).

Public names (imported on first use, so ``import sagim_tf`` does not import TensorFlow):

- ``SaGIM``: the trainable model (G, D, a frozen estimator E and the five losses).
- ``SaGIMGenerator``: G, the manipulation network.
- ``PatchDiscriminator``: D, a PatchGAN discriminator.
- ``ContentFeatures``: phi, the frozen VGG features of the content and cycle losses.
- ``build_estimator``: a saliency estimator E from a spec string (``"itti-koch"``, ...).
- ``load_model``: a saved ``SaGIM`` or generator, with clear errors.
- ``load_generator``: G alone from a saved model.
- ``load_editor``: an ``Editor`` (G and E) for editing photos.
- ``edit_image``: edit one photo toward a guiding map or boxes.

The package's layers and data flow are described in ``docs/architecture.md``.
"""

from __future__ import annotations

from sagim_tf.utils.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "SaGIM": "sagim_tf.models.sagim",
    "SaGIMGenerator": "sagim_tf.models.generator",
    "PatchDiscriminator": "sagim_tf.models.discriminator",
    "ContentFeatures": "sagim_tf.models.content_features",
    "load_model": "sagim_tf.models.loading",
    "build_estimator": "sagim_tf.estimators",
    "load_editor": "sagim_tf.inference.editor",
    "edit_image": "sagim_tf.inference.editor",
    "load_generator": "sagim_tf.models.loading",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = sorted(_LAZY) + ["__version__"]
