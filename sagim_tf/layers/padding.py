"""Pad to a multiple inside a network and crop back, so G and D take any H and W."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagim_tf")
class PadToMultiple(keras.layers.Layer):
    """Mirror-pad the bottom and right edges so that H and W become multiples of ``multiple``.

    Shapes may be dynamic. Symmetric mirroring (edge pixel repeated) is used. One mirror
    pad can add at most the current size, so the padding is applied in up to
    log2(multiple) rounds, each at most doubling the size: an image smaller than
    ``multiple`` (even 1 pixel) still gets padded; normal images finish in the first round
    and the later rounds pad nothing.

    Args:
        multiple: int. H and W are padded up to multiples of it; 1 or less pads nothing.

    Example:
        ```python
        import numpy as np
        from sagim_tf.layers import PadToMultiple

        padded = PadToMultiple(8)(np.zeros((1, 5, 3, 2), "float32"))  # (1, 8, 8, 2)
        ```
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)

        # === Config ===
        self.multiple = int(multiple)

    def call(self, x):
        if self.multiple <= 1:
            return x
        shape = ops.shape(x)
        h, w = shape[1], shape[2]
        left_h = (-h) % self.multiple
        left_w = (-w) % self.multiple
        rounds = max(1, (self.multiple - 1).bit_length())
        for _ in range(rounds):
            step_h = ops.minimum(left_h, h)
            step_w = ops.minimum(left_w, w)
            x = ops.pad(x, [[0, 0], [0, step_h], [0, step_w], [0, 0]], mode="symmetric")
            h, w = h + step_h, w + step_w
            left_h, left_w = left_h - step_h, left_w - step_w
        return x

    def compute_output_shape(self, input_shape):
        def up(d):
            return None if d is None else -(-d // self.multiple) * self.multiple

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple})
        return config


@keras.saving.register_keras_serializable(package="sagim_tf")
class CropToReference(keras.layers.Layer):
    """Crop ``x`` (first input) to the spatial size of ``reference`` (second input).

    The undo of :class:`PadToMultiple`: called on ``[x, reference]``, it keeps the top-left
    ``H x W`` of ``x``, where ``H`` and ``W`` are ``reference``'s. It has no arguments.
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        # Written out so that a layer built with a DTypePolicy object still serializes
        # (Keras' automatic config accepts only plain constructor values).
        return super().get_config()
