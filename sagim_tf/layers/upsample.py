"""Bilinear upsampling by an integer factor that works on inputs of any (dynamic) size."""

from __future__ import annotations

import keras
from keras import ops


def _upsample_axis(x, factor: int, axis: int):
    """Bilinear upsampling along axis 1 or 2 of (B, H, W, C), half-pixel centres, edges clamped."""
    n = ops.shape(x)[axis]
    pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
    pad[axis] = [1, 1]
    xp = ops.pad(x, pad, mode="symmetric")  # one mirrored pixel each side: the edge repeated

    def take(start):
        return xp[:, start : start + n] if axis == 1 else xp[:, :, start : start + n]

    prev, cur, nxt = take(0), take(1), take(2)
    phases = []
    for k in range(factor):
        t = (k + 0.5) / factor - 0.5  # where output k of each input pixel samples, in pixels
        other = prev if t < 0 else nxt
        phases.append(cur * (1.0 - abs(t)) + other * abs(t))
    out = ops.stack(phases, axis=axis + 1)  # (B, H, f, W, C) or (B, H, W, f, C)
    shape = ops.shape(x)
    if axis == 1:
        return ops.reshape(out, (shape[0], shape[1] * factor, shape[2], shape[3]))
    return ops.reshape(out, (shape[0], shape[1], shape[2] * factor, shape[3]))


@keras.saving.register_keras_serializable(package="sagim_tf")
class BilinearUpsample(keras.layers.Layer):
    """Upsample (B, H, W, C) by ``factor`` with bilinear interpolation.

    The same result as a half-pixel-centre bilinear resize to (H * factor, W * factor)
    with clamped edges (TensorFlow's ``tf.image.resize``, OpenCV's ``INTER_LINEAR``), but
    written with slicing and ``keras.ops`` only, so it works on inputs whose size is only
    known at run time (``keras.layers.UpSampling2D(interpolation="bilinear")`` and
    ``keras.ops.image.resize`` need static sizes).

    Args:
        factor: int. The integer upsampling factor. Defaults to 2.
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.factor = int(factor)
        if self.factor < 1:
            raise ValueError(f"BilinearUpsample: factor must be >= 1, got {factor}")

    def call(self, x):
        if self.factor == 1:
            return x
        return _upsample_axis(_upsample_axis(x, self.factor, 1), self.factor, 2)

    def compute_output_shape(self, input_shape):
        def up(d):
            return None if d is None else d * self.factor

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor})
        return config
