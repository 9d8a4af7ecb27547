"""Instance normalisation on 4-D tensors."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagim_tf")
class InstanceNormalization(keras.layers.Layer):
    """Normalise each channel of each image over its spatial axes, then scale and shift.

    Works on (B, H, W, C) tensors only, without the 5-D reshape that
    ``GroupNormalization`` uses (the TFLite GPU delegate rejects 5-D tensors).
    Statistics are computed in float32 even under mixed precision.

    Args:
        epsilon: float. Added to the variance. Defaults to 1e-5.
        center: bool. Whether to learn a per-channel shift ``beta``. Defaults to True.
        scale: bool. Whether to learn a per-channel scale ``gamma``. Defaults to True.

    Example:
        ```python
        import keras
        from sagim_tf.layers import InstanceNormalization

        y = InstanceNormalization()(keras.random.normal((2, 8, 8, 4)))
        ```

    Reference:
        Ulyanov et al., "Instance Normalization: The Missing Ingredient for Fast
        Stylization", 2016.
    """

    def __init__(self, epsilon=1e-5, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)

        # === Config ===
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"InstanceNormalization expects 4-D input, got shape {input_shape}")
        channels = input_shape[-1]
        self.gamma = (
            self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(shape=(channels,), initializer="zeros", name="beta")
            if self.center
            else None
        )

    def call(self, x):
        dtype = x.dtype
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=(1, 2), keepdims=True)
        var = ops.mean(ops.square(x32 - mean), axis=(1, 2), keepdims=True)
        y = (x32 - mean) * ops.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            y = y + ops.cast(self.beta, "float32")
        return ops.cast(y, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "center": self.center, "scale": self.scale})
        return config
