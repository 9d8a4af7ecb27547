"""Small building blocks shared by G and D (backend-agnostic, ``keras.ops`` only)."""

from sagim_tf.layers.gaussian_blur import GaussianBlur, gaussian_kernel_1d
from sagim_tf.layers.instance_norm import InstanceNormalization
from sagim_tf.layers.padding import CropToReference, PadToMultiple

__all__ = [
    "CropToReference",
    "GaussianBlur",
    "InstanceNormalization",
    "PadToMultiple",
    "gaussian_kernel_1d",
]
