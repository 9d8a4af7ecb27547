"""The one interface every saliency estimator E follows.

An estimator is a frozen ``keras.Model`` that maps images (B, H, W, 3), float32 RGB in
[0, 1], to saliency maps (B, H, W, 1) in [0, 1] at the input's own size. It resizes to its
native size (if it has one) and back by itself, so callers never resize.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagim_tf")
class ResizingEstimator(keras.Model):
    """Wrap a network with a native input size so that it takes and returns any size.

    Args:
        network: a Keras model mapping (B, h, w, 3) in [0, 1] to (B, h', w', 1) in [0, 1].
        native_size: (width, height) the network expects, or None to run at the input size.
        differentiable: whether gradients flow from the map to the image (False for
            estimators that are evaluation-only judges).

    The network is frozen: ``trainable`` is False and it is always called with
    ``training=False``.
    """

    def __init__(self, network, native_size=None, differentiable=True, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.native_size = tuple(native_size) if native_size is not None else None
        self.differentiable = bool(differentiable)
        self.network.trainable = False
        self.trainable = False

    def build(self, input_shape=None):
        """Nothing to create: the wrapped network owns every weight (built at its own size)."""
        if not self.network.built and self.native_size is not None:
            nw, nh = self.native_size
            self.network.build((None, nh, nw, 3))
        self.built = True

    def call(self, images):
        images = ops.convert_to_tensor(images)
        h, w = ops.shape(images)[1], ops.shape(images)[2]
        x = images
        if self.native_size is not None:
            nw, nh = self.native_size
            x = ops.image.resize(x, (nh, nw), interpolation="bilinear", antialias=False)
        s = self.network(x, training=False)
        s = ops.image.resize(s, (h, w), interpolation="bilinear")
        return ops.clip(s, 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "native_size": list(self.native_size) if self.native_size else None,
                "differentiable": self.differentiable,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
