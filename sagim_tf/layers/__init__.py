"""Small building blocks shared by G and D (backend-agnostic, ``keras.ops`` only)."""

from sagim_tf.layers.gaussian_blur import GaussianBlur, gaussian_kernel_1d
from sagim_tf.layers.guided_filter import GuidedFilter
from sagim_tf.layers.instance_norm import InstanceNormalization
from sagim_tf.layers.luma_slice import LumaSlice
from sagim_tf.layers.padding import CropToReference, PadToMultiple
from sagim_tf.layers.photo_operators import PhotoOperators
from sagim_tf.layers.upsample import BilinearUpsample

__all__ = [
    "BilinearUpsample",
    "CropToReference",
    "GaussianBlur",
    "GuidedFilter",
    "InstanceNormalization",
    "LumaSlice",
    "PadToMultiple",
    "PhotoOperators",
    "gaussian_kernel_1d",
]
