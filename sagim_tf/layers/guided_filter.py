"""Edge-aware smoothing of parameter fields with the photo as guide (a guided filter).

The operator head predicts its fields on a grid 8 times coarser than G's input and
upsamples them bilinearly, so an edit near an object's edge spreads about one grid cell
across it: the "spotlight" look of an emphasized object, whose glow lights up the
background around it. This layer makes the fields follow the photo's edges instead.

It is He, Sun and Tang's guided filter ("Guided Image Filtering", ECCV 2010 / TPAMI 2013)
with the photo's luma ``I`` as the guide and each field channel ``p`` as the input. In
every window of radius ``r`` the field is replaced by the least-squares fit
``a * I + b``:

    a = cov(I, p) / (var(I) + eps),   b = mean(p) - a * mean(I)

and the output is ``mean(a) * I + mean(b)``, the fits of all windows that cover a pixel
averaged. Where the photo is flat within a window (``var(I) << eps``), ``a`` is about 0
and the field is only smoothed; where the window holds an edge stronger than
``sqrt(eps)`` in luma, the field takes the edge's shape, so a change stops at the edge
instead of bleeding across it. A constant field stays exactly constant, so zero fields
still return the photo.

Every mean is a box filter, written as two 1-D average pools (``"same"`` padding averages
over the pixels inside the image only), so the cost is O(pixels) whatever the radius, and
the layer runs under every Keras backend and converts to TFLite (AVERAGE_POOL_2D).
"""

from __future__ import annotations

import keras
from keras import ops

from sagim_tf.layers.photo_operators import luma

#: Default regulariser: luma edges with a contrast above about sqrt(0.01) = 0.1 are kept.
DEFAULT_EPS = 1e-2


def box_mean(x, radius: int):
    """Mean of (B, H, W, C) over (2r+1) x (2r+1) windows, clipped at the borders."""
    k = 2 * int(radius) + 1
    x = ops.average_pool(x, (k, 1), strides=(1, 1), padding="same")
    return ops.average_pool(x, (1, k), strides=(1, 1), padding="same")


def guided_filter(fields, image, radius: int, eps: float = DEFAULT_EPS):
    """Guided filter of ``fields`` (B, H, W, C) by the luma of ``image`` (B, H, W, 3)."""
    guide = luma(image)
    mean_i = box_mean(guide, radius)
    var_i = ops.maximum(box_mean(guide * guide, radius) - mean_i * mean_i, 0.0)
    mean_p = box_mean(fields, radius)
    cov_ip = box_mean(guide * fields, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


@keras.saving.register_keras_serializable(package="sagim_tf")
class GuidedFilter(keras.layers.Layer):
    """Smooth fields so that they follow the edges of an image (see the module docstring).

    Called as ``GuidedFilter(radius)([fields, image])`` with ``fields`` (B, H, W, C) and
    ``image`` (B, H, W, 3) in [0, 1] of the same size; returns (B, H, W, C). Computed in
    float32 whatever the policy (sums of squares lose too much in half precision).

    Args:
        radius: int. The window radius in pixels of ``image``; 0 returns the fields
            unchanged.
        eps: float. The regulariser: the squared luma contrast below which an edge is
            smoothed over rather than followed. Defaults to ``1e-2``.

    Example:

    ```python
    import numpy as np
    from sagim_tf.layers import GuidedFilter

    image = np.zeros((1, 32, 32, 3), "float32")
    image[:, :, 16:] = 1.0                     # a vertical edge
    fields = np.zeros((1, 32, 32, 1), "float32")
    fields[:, :, 12:] = 1.0                    # a change that starts 4 px early
    sharp = GuidedFilter(4)([fields, image])   # now (nearly) stops at the edge
    ```
    """

    def __init__(self, radius, eps=DEFAULT_EPS, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.radius = int(radius)
        self.eps = float(eps)
        if self.radius < 0:
            raise ValueError(f"GuidedFilter: radius must be >= 0, got {radius}")
        if not self.eps > 0:
            raise ValueError(f"GuidedFilter: eps must be > 0, got {eps}")

    def call(self, inputs):
        fields, image = inputs
        fields = ops.cast(fields, "float32")
        if self.radius == 0:
            return fields
        return guided_filter(fields, ops.cast(image, "float32"), self.radius, self.eps)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"radius": self.radius, "eps": self.eps})
        return config
