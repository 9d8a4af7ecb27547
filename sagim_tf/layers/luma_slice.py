"""Slice a bilateral grid of parameter fields with the photo's luma (HDRNet-style).

With one setting per grid cell, a cell that holds an object's edge gives both sides of the
edge the same setting, and the bilinear upsampling spreads it a cell further: an
emphasized object glows into its background. A *bilateral grid* (Chen, Paris and Durand,
SIGGRAPH 2007; used for learned photo edits by Gharbi, Chen, Barron, Hasinoff and Durand's
HDRNet, SIGGRAPH 2017) gives every cell ``bins`` settings instead, one per band of
brightness, and each pixel reads the setting of its own brightness. A dark background and
a bright object in the same cell can then get different edits, and the edit follows the
edge between them wherever their brightness differs.

The grid arrives already upsampled in space (bilinear, like the plain fields), as
``(B, H, W, K * bins)`` with the bins of channel ``k`` at ``k * bins .. k * bins + bins -
1``; this layer interpolates linearly along the brightness axis at each pixel's luma
``L`` (Rec. 601, in [0, 1]), whose position on the axis is ``L * (bins - 1)``. Zero grids
give zero fields, so an untrained head still returns the photo; ``bins=1`` is the plain
field.
"""

from __future__ import annotations

import keras
from keras import ops

from sagim_tf.layers.photo_operators import luma


def luma_weights(image, bins: int):
    """Each pixel's linear-interpolation weights on the ``bins`` brightness bins, (B, H, W, bins)."""
    position = ops.clip(luma(image), 0.0, 1.0) * float(bins - 1)
    centres = ops.convert_to_tensor([float(d) for d in range(bins)], image.dtype)
    return ops.relu(1.0 - ops.abs(position - centres))


def slice_grid(grid, image, bins: int):
    """``(B, H, W, K * bins)`` grid, ``(B, H, W, 3)`` image -> ``(B, H, W, K)`` fields."""
    if bins == 1:
        return grid
    shape = ops.shape(grid)
    channels = grid.shape[-1] // bins
    grid = ops.reshape(grid, (shape[0], shape[1], shape[2], channels, bins))
    weights = ops.expand_dims(luma_weights(image, bins), axis=3)
    return ops.sum(grid * weights, axis=-1)


@keras.saving.register_keras_serializable(package="sagim_tf")
class LumaSlice(keras.layers.Layer):
    """Read a bilateral grid of fields at each pixel's brightness (see the module docstring).

    Called as ``LumaSlice(bins)([grid, image])`` with ``grid`` (B, H, W, K * bins) and
    ``image`` (B, H, W, 3) in [0, 1] of the same size; returns (B, H, W, K) in float32.

    Args:
        bins: int. Brightness bins per field channel, >= 1 (1: the grid is the fields).

    Example:

    ```python
    import numpy as np
    from sagim_tf.layers import LumaSlice

    image = np.zeros((1, 8, 8, 3), "float32")
    image[:, :, 4:] = 1.0                       # dark left, bright right
    grid = np.zeros((1, 8, 8, 2), "float32")    # one field, two bins
    grid[..., 1] = 1.0                          # change only what is bright
    fields = LumaSlice(2)([grid, image])        # 0 on the left, 1 on the right
    ```
    """

    def __init__(self, bins, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.bins = int(bins)
        if self.bins < 1:
            raise ValueError(f"LumaSlice: bins must be >= 1, got {bins}")

    def call(self, inputs):
        grid, image = inputs
        grid = ops.cast(grid, "float32")
        return slice_grid(grid, ops.cast(image, "float32"), self.bins)

    def compute_output_shape(self, input_shape):
        grid = input_shape[0]
        channels = None if grid[-1] is None else grid[-1] // self.bins
        return (*grid[:-1], channels)

    def get_config(self):
        config = super().get_config()
        config.update({"bins": self.bins})
        return config
