"""D, a PatchGAN discriminator on images (the paper gives D no saliency input)."""

from __future__ import annotations

import keras
from keras import layers

from sagim_tf.layers import InstanceNormalization


@keras.saving.register_keras_serializable(package="sagim_tf")
class PatchDiscriminator(keras.Model):
    """PatchGAN: classifies each overlapping patch of an image as real or edited.

    Takes images (B, H, W, 3) in [0, 1] and returns logits (B, H', W', 1), one per patch
    (about H/8 x W/8 with the defaults). With ``num_layers=3`` each logit sees a 70x70
    receptive field, as in pix2pix. Convolutions are 4x4; all but the first and the last
    are followed by instance normalisation; activations are LeakyReLU(0.2). The logits are
    float32 even under mixed precision.

    Args:
        base_filters: int. Channels of the first convolution, doubled per layer up to 8x.
            Defaults to 64.
        num_layers: int. The number of stride-2 convolutions. Defaults to 3.
        dtype: string or ``keras.mixed_precision.DTypePolicy``. The dtype policy of every
            layer but the float32 logits. None uses the global policy. Defaults to None.

    Example:
        >>> D = PatchDiscriminator(base_filters=16, num_layers=2)
        >>> logits = D(images)

    Reference:
        Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks"
        (pix2pix), CVPR 2017.
    """

    def __init__(self, base_filters=64, num_layers=3, dtype=None, **kwargs):
        if base_filters < 1 or num_layers < 1:
            raise ValueError(
                f"PatchDiscriminator: base_filters and num_layers must be >= 1, "
                f"got {base_filters} and {num_layers}"
            )

        # === Functional Model ===
        image = keras.Input(shape=(None, None, 3), name="image")
        x = layers.Rescaling(2.0, offset=-1.0, dtype=dtype, name="to_signed")(image)
        x = layers.Conv2D(base_filters, 4, strides=2, padding="same", dtype=dtype, name="conv0")(x)
        x = layers.LeakyReLU(0.2, dtype=dtype, name="act0")(x)
        for i in range(1, num_layers + 1):
            filters = base_filters * min(2**i, 8)
            strides = 2 if i < num_layers else 1
            x = layers.Conv2D(
                filters, 4, strides=strides, padding="same", dtype=dtype, name=f"conv{i}"
            )(x)
            x = InstanceNormalization(dtype=dtype, name=f"norm{i}")(x)
            x = layers.LeakyReLU(0.2, dtype=dtype, name=f"act{i}")(x)
        # The logits stay float32 under any policy, as the losses expect.
        logits = layers.Conv2D(1, 4, padding="same", dtype="float32", name="logits")(x)
        super().__init__(inputs=image, outputs=logits, **kwargs)
        if dtype is not None:
            # A functional model does not take its own policy from the constructor.
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Config ===
        self.base_filters = int(base_filters)
        self.num_layers = int(num_layers)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "base_filters": self.base_filters,
            "num_layers": self.num_layers,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
