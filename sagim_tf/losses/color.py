"""L_color: local mean colours must not drift where the guidance is high (paper eq. 3)."""

from keras import ops

from sagim_tf.layers.gaussian_blur import GaussianBlur


def color_loss(original, edited, guidance, kernel_size=21, sigma=None, blur=None):
    """L_color = (1/N) sum S_guiding * |M(I) - M(I~)|.

    M filters each colour channel with a Gaussian of size ``kernel_size`` (21 in the
    paper; sigma by OpenCV's rule, 3.5). The sum runs over pixels and colour channels;
    N = H * W is the pixel count; the result is averaged over the batch.

    Args:
        original: I, (B, H, W, 3) in [0, 1].
        edited: I~, same shape.
        guidance: S_guiding, (B, H, W, 1) in [0, 1]; it weights every channel.
        blur: an existing :class:`GaussianBlur` to reuse (else one is made).
    """
    blur = blur or GaussianBlur(kernel_size, sigma)
    original = ops.cast(original, "float32")
    edited = ops.cast(edited, "float32")
    diff = ops.abs(blur(original) - blur(edited))
    weighted = ops.cast(guidance, "float32") * diff
    per_image = ops.sum(weighted, axis=(1, 2, 3))
    pixels = ops.cast(ops.shape(original)[1] * ops.shape(original)[2], "float32")
    return ops.mean(per_image / pixels)
