"""Per-channel Gaussian filtering: M(.) of the colour loss (paper eq. 3)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def gaussian_kernel_1d(size: int, sigma: float | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian taps of odd length ``size``.

    With ``sigma=None`` it follows OpenCV's rule for a given kernel size,
    ``0.3 * ((size - 1) / 2 - 1) + 0.8`` (3.5 for the paper's size 21).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be a positive odd number, got {size}")
    if sigma is None:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be positive, got {sigma}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-0.5 * (r / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def separable_blur(x, taps):
    """Filter images x (B, H, W, C) with the separable kernel ``taps`` (odd length), per
    channel, with reflect padding (H and W must exceed ``len(taps) // 2``)."""
    x = ops.convert_to_tensor(x)
    size = len(taps)
    channels = x.shape[-1]
    pad = size // 2
    taps = ops.cast(ops.convert_to_tensor(np.asarray(taps, np.float32)), x.dtype)
    kx = ops.tile(ops.reshape(taps, (1, size, 1, 1)), (1, 1, channels, 1))
    ky = ops.tile(ops.reshape(taps, (size, 1, 1, 1)), (1, 1, channels, 1))
    x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
    x = ops.depthwise_conv(x, kx, strides=1, padding="valid")
    return ops.depthwise_conv(x, ky, strides=1, padding="valid")


@keras.saving.register_keras_serializable(package="sagim_tf")
class GaussianBlur(keras.layers.Layer):
    """Separable Gaussian filter applied to each channel, with reflect padding.

    The output has the input's shape. Images must be larger than ``size // 2`` in both
    spatial dimensions (reflect padding needs that many pixels).

    Args:
        size: int. The odd kernel size; the paper's colour loss uses 21. Defaults to 21.
        sigma: float or None. The standard deviation; None uses OpenCV's rule for
            ``size`` (3.5 for 21). Defaults to None.

    Example:
        ```python
        import numpy as np
        from sagim_tf.layers import GaussianBlur

        images = np.random.rand(2, 32, 48, 3).astype("float32")
        blurred = GaussianBlur(21)(images)  # (2, 32, 48, 3)
        ```
    """

    def __init__(self, size=21, sigma=None, **kwargs):
        super().__init__(**kwargs)

        # === Config ===
        self.size = int(size)
        self.sigma = None if sigma is None else float(sigma)

        # === Taps (a constant, not a weight) ===
        self._taps = gaussian_kernel_1d(self.size, self.sigma)

    def call(self, x):
        return separable_blur(x, self._taps)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "sigma": self.sigma})
        return config
