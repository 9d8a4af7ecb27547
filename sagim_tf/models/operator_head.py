"""G's operator head: smooth fields of photographic-operator settings instead of a residual.

The residual head (the paper's G) adds ``tanh(r)`` to every pixel, so it can paint
anything, fringes and halos included. The operator head predicts, from the same U-Net
features, the settings of a few photographic operators (white balance, exposure,
contrast, gamma, saturation, local detail; :mod:`sagim_tf.layers.photo_operators`) on a
coarse grid, ``field_stride`` times coarser than the input, and applies them to the
photo. The fields are smooth by construction (bilinear upsampling of a coarse grid), so
the edit changes tone and colour regionally, as a photographer's local adjustments do.
With ``guide_radius`` > 0 a guided filter with the image as guide then bends them to the
image's edges (:mod:`sagim_tf.layers.guided_filter`), so that a change stops at an
object's outline instead of spreading a grid cell beyond it.

Because the fields are smooth, they can be computed on a small copy of a photo and
applied to the photo at its own resolution (:class:`sagim_tf.inference.editor.Editor`
does this): the network's cost stays that of the small copy, and no upsampled residual
smears across the full-size photo's edges.

The last convolution starts at zero (kernel and bias), so an untrained head returns the
photo exactly.
"""

from __future__ import annotations

import keras
from keras import layers

from sagim_tf.layers import (
    BilinearUpsample,
    CropToReference,
    GuidedFilter,
    LumaSlice,
    PhotoOperators,
)
from sagim_tf.layers.photo_operators import NUM_OPERATORS

#: Default coarseness of the fields: one setting per 8x8 pixels of G's input.
DEFAULT_FIELD_STRIDE = 8


def operator_head(
    features,
    image,
    field_stride: int,
    width: int,
    dtype=None,
    guide_radius: int = 0,
    luma_bins: int = 1,
):
    """Add the operator head to G's functional graph.

    Args:
        features: the U-Net's last feature map, at the padded input's resolution (its H and
            W multiples of ``field_stride``; padding is at the bottom and right).
        image: G's image input (B, H, W, 3).
        field_stride: int. How much coarser than the input the fields are predicted.
        width: int. Channels of the head's hidden convolution.
        dtype: the dtype policy of the hidden layers (the fields and the edit are float32).
        guide_radius: int. Radius in pixels of the guided filter that makes the upsampled
            fields follow the image's edges (:class:`~sagim_tf.layers.GuidedFilter`); 0
            keeps the plain bilinear fields. Defaults to 0.
        luma_bins: int. Brightness bins of the coarse grid (a bilateral grid sliced with
            the image's luma, :class:`~sagim_tf.layers.LumaSlice`); 1 is one setting per
            cell. Defaults to 1.

    Returns:
        ``(fields, edited)``: raw fields (B, H, W, 7) at the input's resolution (bilinear
        from the coarse grid, then guided by the image when ``guide_radius`` > 0) and the
        edited image (B, H, W, 3). The fields are the output of the layer named
        ``"fields"`` either way.
    """
    x = layers.AveragePooling2D(field_stride, dtype=dtype, name="fields_pool")(features)
    x = layers.Conv2D(width, 3, padding="same", dtype=dtype, name="fields_hidden")(x)
    x = layers.ReLU(dtype=dtype, name="fields_relu")(x)
    coarse = layers.Conv2D(
        NUM_OPERATORS * luma_bins,
        1,
        dtype="float32",
        kernel_initializer="zeros",
        bias_initializer="zeros",
        name="fields_coarse",
    )(x)
    fields = BilinearUpsample(field_stride, dtype="float32", name="fields_upsample")(coarse)
    makers = [lambda name: CropToReference(name=name, dtype="float32")]
    if luma_bins > 1:
        makers.append(lambda name: LumaSlice(luma_bins, name=name, dtype="float32"))
    if guide_radius:
        makers.append(lambda name: GuidedFilter(guide_radius, name=name, dtype="float32"))
    names = [f"fields_step{k}" for k in range(len(makers) - 1)] + ["fields"]
    for make, name in zip(makers, names):  # the last step's output is the layer "fields"
        fields = make(name)([fields, image])
    edited = PhotoOperators(name="edited", dtype="float32")([image, fields])
    return fields, edited


def field_model(generator) -> keras.Model:
    """``[image, guidance] -> fields`` of an operator-head G, sharing its weights."""
    return keras.Model(
        generator.inputs, generator.get_layer("fields").output, name=f"{generator.name}_fields"
    )
