"""G, the manipulation network: (image, guiding saliency map) -> edited image."""

from __future__ import annotations

import keras
from keras import layers, ops

from sagim_tf.layers import CropToReference, InstanceNormalization, PadToMultiple
from sagim_tf.models import HEADS
from sagim_tf.models.operator_head import DEFAULT_FIELD_STRIDE, operator_head


@keras.saving.register_keras_serializable(package="sagim_tf")
class ResidualOutput(keras.layers.Layer):
    """``clip(image + tanh(residual), 0, 1)``, computed in float32."""

    def call(self, inputs):
        image, residual = inputs
        image = ops.cast(image, "float32")
        residual = ops.cast(residual, "float32")
        return ops.clip(image + ops.tanh(residual), 0.0, 1.0)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        # Written out so that a layer built with a DTypePolicy object still serializes
        # (Keras' automatic config accepts only plain constructor values).
        return super().get_config()


def _conv_norm_act(x, filters, kernel_size, strides, name, dtype=None):
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", dtype=dtype, name=f"{name}_conv"
    )(x)
    x = InstanceNormalization(dtype=dtype, name=f"{name}_norm")(x)
    return layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="sagim_tf")
class SaGIMGenerator(keras.Model):
    """The manipulation network G of SaGIM: a U-Net with a residual or an operator head.

    G takes ``[image, guidance]``: images (B, H, W, 3) in [0, 1] and guiding saliency maps
    (B, H, W, 1) in [0, 1]. It returns the edited image (B, H, W, 3) in [0, 1].

    * ``head="residual"`` (the paper's G): ``clip(image + tanh(r), 0, 1)``, where r is the
      U-Net's output. The last convolution starts near zero, so an untrained G is close to
      the identity and training begins from "no edit".
    * ``head="operators"``: the U-Net's features set seven photographic operators
      (white balance, exposure, contrast, gamma, saturation, detail) through smooth fields
      ``field_stride`` times coarser than the input (:mod:`sagim_tf.models.operator_head`).
      The head starts at exactly zero, so an untrained G returns the photo, and the fields
      of a small copy can be applied to the photo at full size. The fields are the output
      of the layer named ``"fields"`` (:func:`~sagim_tf.models.operator_head.field_model`).

    The network is fully convolutional: inputs of any H and W are mirror-padded up to a
    multiple of ``2 ** depth`` inside and cropped back, so the output always has the
    input's size. Every convolution is followed by instance normalisation and ReLU.

    The paper defers G's architecture to its supplement, which is not public; this U-Net
    (encoder-decoder with skip connections and residual blocks at the bottleneck, as in
    pix2pix/CycleGAN generators) is our fill-in, documented in docs/method.md §1.

    Args:
        base_filters: int. Channels of the first stage; stage k has
            ``base_filters * 2**k``, capped at ``max_filters``. Defaults to 32.
        depth: int. The number of stride-2 downsampling stages (and matching upsampling
            stages). Defaults to 3.
        num_residual_blocks: int. Residual blocks at the bottleneck. Defaults to 2.
        max_filters: int. The upper bound on channels per stage. Defaults to 256.
        output_init_stddev: float. The standard deviation of the residual head's last
            convolution's initial kernel. Defaults to 1e-3.
        head: string. ``"residual"`` or ``"operators"``. Defaults to ``"residual"``.
        field_stride: int. The operator head's field grid, one setting per
            ``field_stride`` x ``field_stride`` pixels of G's input; a power of 2.
            Defaults to 8.
        work_size: int. The longer side, in pixels, that G was trained at and that the
            editor runs it at when it applies the operator head's fields to a larger photo.
            Defaults to 256.
        field_guide_radius: int. The operator head's edge-aware step: the radius, in
            pixels of G's input, of a guided filter with the image as guide that makes the
            upsampled fields follow the image's edges; 0 keeps plain bilinear fields
            (and is what a file saved without this setting loads as). Defaults to 0.
        field_luma_bins: int. Brightness bins of the operator head's coarse grid: with
            more than 1, each cell holds one setting per band of brightness and every
            pixel reads its own band's (a bilateral grid, :mod:`sagim_tf.layers.luma_slice`),
            so dark and bright parts of a cell can be edited differently. 1 (what a file
            saved without this setting loads as) is one setting per cell. Defaults to 1.
        dtype: string or ``keras.mixed_precision.DTypePolicy``. The dtype policy of every
            layer but the last three (the residual convolution, the crop and the output,
            always float32). None uses the global policy. Defaults to None.

    Example:
        >>> G = SaGIMGenerator(base_filters=16, depth=2)
        >>> edited = G([images, guidance])

    Reference:
        Y.-C. Chen, K.-J. Chang, Y.-H. Tsai, Y.-C. F. Wang and W.-C. Chiu, "Guide Your
        Eyes: Learning Image Manipulation under Saliency Guidance", BMVC 2019 (§3.2). Ronneberger et al., "U-Net", MICCAI 2015.
    """

    def __init__(
        self,
        base_filters=32,
        depth=3,
        num_residual_blocks=2,
        max_filters=256,
        output_init_stddev=1e-3,
        head="residual",
        field_stride=DEFAULT_FIELD_STRIDE,
        work_size=256,
        field_guide_radius=0,
        field_luma_bins=1,
        dtype=None,
        **kwargs,
    ):
        if depth < 0 or base_filters < 1 or num_residual_blocks < 0 or max_filters < 1:
            raise ValueError(
                "SaGIMGenerator: base_filters and max_filters must be >= 1, depth and "
                f"num_residual_blocks >= 0; got base_filters={base_filters}, depth={depth}, "
                f"num_residual_blocks={num_residual_blocks}, max_filters={max_filters}"
            )
        if head not in HEADS:
            raise ValueError(f"SaGIMGenerator: head must be one of {HEADS}, got {head!r}")
        field_stride, work_size = int(field_stride), int(work_size)
        if field_stride < 1 or field_stride & (field_stride - 1):
            raise ValueError(
                f"SaGIMGenerator: field_stride must be a power of 2, got {field_stride}"
            )
        field_guide_radius = int(field_guide_radius)
        if field_guide_radius < 0:
            raise ValueError(
                f"SaGIMGenerator: field_guide_radius must be >= 0, got {field_guide_radius}"
            )
        field_luma_bins = int(field_luma_bins)
        if field_luma_bins < 1:
            raise ValueError(f"SaGIMGenerator: field_luma_bins must be >= 1, got {field_luma_bins}")
        if work_size < 16:
            raise ValueError(f"SaGIMGenerator: work_size must be at least 16, got {work_size}")
        multiple = 2**depth if head == "residual" else max(2**depth, field_stride)

        def width(stage):
            return min(base_filters * 2**stage, max_filters)

        # === Functional Model ===
        image = keras.Input(shape=(None, None, 3), name="image")
        guidance = keras.Input(shape=(None, None, 1), name="guidance")
        x = layers.Concatenate(dtype=dtype, name="concat_inputs")([image, guidance])
        x = layers.Rescaling(2.0, offset=-1.0, dtype=dtype, name="to_signed")(x)
        x = PadToMultiple(multiple, dtype=dtype, name="pad")(x)
        x = _conv_norm_act(x, width(0), 7, 1, "stem", dtype)
        skips = []
        for stage in range(1, depth + 1):
            skips.append(x)
            x = _conv_norm_act(x, width(stage), 3, 2, f"down{stage}", dtype)
            x = _conv_norm_act(x, width(stage), 3, 1, f"down{stage}b", dtype)
        for block in range(num_residual_blocks):
            y = _conv_norm_act(x, width(depth), 3, 1, f"res{block}a", dtype)
            y = layers.Conv2D(
                width(depth), 3, padding="same", dtype=dtype, name=f"res{block}b_conv"
            )(y)
            y = InstanceNormalization(dtype=dtype, name=f"res{block}b_norm")(y)
            x = layers.Add(dtype=dtype, name=f"res{block}_add")([x, y])
        for stage in range(depth, 0, -1):
            x = layers.UpSampling2D(
                2, interpolation="nearest", dtype=dtype, name=f"up{stage}_upsample"
            )(x)
            x = _conv_norm_act(x, width(stage - 1), 3, 1, f"up{stage}", dtype)
            x = layers.Concatenate(dtype=dtype, name=f"up{stage}_skip")([x, skips[stage - 1]])
            x = _conv_norm_act(x, width(stage - 1), 3, 1, f"up{stage}b", dtype)
        # The output end stays float32 under any policy: the edit is never rounded to half.
        if head == "operators":
            _, edited = operator_head(
                x,
                image,
                field_stride,
                width(0),
                dtype,
                guide_radius=field_guide_radius,
                luma_bins=field_luma_bins,
            )
        else:
            residual = layers.Conv2D(
                3,
                3,
                padding="same",
                dtype="float32",
                kernel_initializer=keras.initializers.RandomNormal(stddev=output_init_stddev),
                name="residual",
            )(x)
            residual = CropToReference(name="crop", dtype="float32")([residual, image])
            edited = ResidualOutput(name="edited", dtype="float32")([image, residual])
        super().__init__(inputs=[image, guidance], outputs=edited, **kwargs)
        if dtype is not None:
            # A functional model does not take its own policy from the constructor.
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Config ===
        self.base_filters = int(base_filters)
        self.depth = int(depth)
        self.num_residual_blocks = int(num_residual_blocks)
        self.max_filters = int(max_filters)
        self.output_init_stddev = float(output_init_stddev)
        self.head = head
        self.field_stride = field_stride
        self.work_size = work_size
        self.field_guide_radius = field_guide_radius
        self.field_luma_bins = field_luma_bins

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "base_filters": self.base_filters,
            "depth": self.depth,
            "num_residual_blocks": self.num_residual_blocks,
            "max_filters": self.max_filters,
            "output_init_stddev": self.output_init_stddev,
            "head": self.head,
            "field_stride": self.field_stride,
            "work_size": self.work_size,
            "field_guide_radius": self.field_guide_radius,
            "field_luma_bins": self.field_luma_bins,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
