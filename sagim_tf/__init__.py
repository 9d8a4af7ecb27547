"""sagim_tf: saliency-guided image manipulation (SaGIM, BMVC 2019) in TensorFlow/Keras.

Public names are imported lazily so that ``import sagim_tf`` and the CLI's help stay quick.
"""

from __future__ import annotations

import importlib

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


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sagim_tf' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
