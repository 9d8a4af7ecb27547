"""Photographic operators driven by per-pixel parameter fields (the operator head's back end).

The operator head of G predicts, instead of a pixel residual, a few smooth *parameter
fields*, one value per pixel and operator; this module turns those fields into an edit.
Every operator here is one a photographer has in an editor, is bounded by ``tanh`` to a
documented photographic range, and is exactly the identity when its field is zero, so an
untrained (zero-initialised) head returns the photo unchanged.

Operators, in the order they are applied (white balance first, as a raw converter does,
local detail last, as a sharpening pass does):

===============  =====================================================  ===================
channel (index)  what it does, with ``t = tanh(field)``                  range
===============  =====================================================  ===================
temperature (0)  red gain ``e^{0.25 t}``, blue gain ``e^{-0.25 t}``      about +-28% R/B
tint (1)         green gain ``e^{-0.15 t}`` (positive: magenta)          about +-16% G
exposure (2)     gain ``2^{EV}``, ``EV = 1.0 t``; brightening rolls the     -1 .. +1 EV
                 highlights off (below)
contrast (3)     S-curve ``x + k x (1 - x) (2x - 1)``, ``k = 2 (2^{0.5 t}  mid-tone slope
                 - 1)``: mid-tones steeper by ``2^{0.5 t}``; 0 and 1 stay  x0.71 .. x1.41
tone (4)         ``x + a x (1 - x)``, ``a = 0.6 t`` (positive: brighter   mid-grey +-0.15
                 mid-tones; black and white stay)
saturation (5)   ``Y + (x - Y) * 2^{t}``, ``Y`` the Rec. 601 luma        x0.5 .. x2
detail (6)       ``x + 0.5 t * (x - blur(x))`` (positive: sharper)        unsharp gain +-0.5
===============  =====================================================  ===================

The white-balance gains are divided by their luma-weighted mean, so temperature and tint
change colour, not brightness. The ranges follow the peers: Realistic Saliency Guided
Image Enhancement (Miangoleh et al., CVPR 2023) bounds exposure to x[0.5, 2] and
saturation to x[0, 2], and judges parameters far from identity as unrealistic; we keep
saturation at x[0.5, 2] for that reason. The tone curve is a quadratic rather than a
power law: monotone and inside [0, 1] for ``|a| <= 1``, and free of per-pixel ``pow``,
which dominated the cost of a 12-megapixel edit.

Nothing is clipped on the way (the result is clipped once, at the end). White balance and
exposure multiply channel ``c`` by its gain ``g_c`` and divide by ``1 + max(m - 1, 0) x``,
``m`` the gains' luma-weighted mean (``2^{EV}``, since white balance keeps brightness):
darkening is a plain gain, and brightening keeps the gain's slope in the shadows but maps
white to white, rolling the highlights off instead of clipping them. Contrast is an
S-curve through 0, 1/2 and 1, monotone for ``|k| <= 1``. An earlier version multiplied
and then applied a linear contrast clipped to [0, 1]: re-applying a demo model's fields
with the roll-off and the S-curve instead took a third off its non-affine share (the
photorealism measure) and a sixth off its colour change where nothing was asked, the
flat, blown-out patches that clipping makes. The detail gain is bounded at 0.5: at 1, a demo model sharpened
the regions it emphasized by up to +0.7, which made half of its edits' non-affine share
(the photorealism measure) and showed as grain in flat regions.

The work is split in two: :func:`coefficients` turns raw fields into per-pixel
coefficients (the gains, ``k``, ``a``, ``2^s - 1``, the detail amount: all the
transcendental work) and :func:`apply_coefficients` applies them with a few multiply-adds.
An editor can compute the coefficients on G's small grid and interpolate them to a
12-megapixel photo, instead of running ``tanh``/``exp`` per pixel of the photo.

Everything is written in ``keras.ops``, so it runs under any Keras backend and inside G.
"""

from __future__ import annotations

import keras
from keras import ops

from sagim_tf.layers.gaussian_blur import GaussianBlur

#: The operators in the order they are applied; a field's channel index is its position.
OPERATOR_NAMES = ("temperature", "tint", "exposure", "contrast", "tone", "saturation", "detail")
#: ``tanh`` bound of each operator's parameter (see the module docstring for units).
OPERATOR_RANGES = {
    "temperature": 0.25,
    "tint": 0.15,
    "exposure": 1.0,
    "contrast": 0.5,
    "tone": 0.6,
    "saturation": 1.0,
    "detail": 0.5,
}
NUM_OPERATORS = len(OPERATOR_NAMES)
#: Channels of :func:`coefficients`: R, G, B gains, contrast, tone, saturation, detail.
NUM_COEFFICIENTS = 7
#: Rec. 601 luma weights, used for saturation and to keep white balance brightness-neutral.
LUMA = (0.299, 0.587, 0.114)
#: The local-detail operator's blur: sigma in pixels of the image it is applied to.
DETAIL_SIGMA = 1.5
DETAIL_KERNEL_SIZE = 7


def bounded(fields):
    """Raw fields (..., K) -> operator settings in their units (EV, log2 factors, ...)."""
    fields = ops.convert_to_tensor(fields)
    limits = ops.convert_to_tensor([OPERATOR_RANGES[n] for n in OPERATOR_NAMES], fields.dtype)
    return ops.tanh(fields) * limits


def luma(x):
    """Rec. 601 luma of images (..., 3) -> (..., 1)."""
    w = ops.convert_to_tensor(LUMA, x.dtype)
    return ops.sum(x * w, axis=-1, keepdims=True)


def coefficients(fields):
    """Raw fields (..., 7) -> per-pixel coefficients (..., 7); zero fields give the identity's.

    Channels: the R, G, B gains (white balance times exposure), then ``k = 2 (2^c - 1)``
    (the contrast S-curve's strength: its slope at mid-grey is ``1 + k / 2 = 2^c``), ``a``
    (tone), ``2^s - 1`` (saturation) and the detail amount.
    """
    p = bounded(fields)
    temperature, tint, ev = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    gains = ops.concatenate([ops.exp(temperature), ops.exp(-tint), ops.exp(-temperature)], -1)
    # luma(gains) - luma(ones) is exactly 0 at identity, even where the weights' float sum
    # is not exactly 1, so zero fields give gains of exactly 1.
    neutral = 1.0 + luma(gains) - luma(ops.ones_like(gains))
    gains = gains / neutral * ops.power(2.0, ev)
    contrast = 2.0 * (ops.power(2.0, p[..., 3:4]) - 1.0)
    saturation = ops.power(2.0, p[..., 5:6]) - 1.0
    return ops.concatenate([gains, contrast, p[..., 4:5], saturation, p[..., 6:7]], axis=-1)


# Each step is written as ``x + change`` with a change of exactly 0 at identity
# coefficients, so that zero fields return the input bit for bit (``(x - 0.5) * 1 + 0.5``
# is not always ``x`` in floating point).
def apply_coefficients(x, coef, blur):
    """Apply :func:`coefficients` (..., 7) to images x (..., 3) in [0, 1]; ``blur`` is the
    detail operator's Gaussian (a callable on (B, H, W, 3))."""
    gains = coef[..., 0:3]
    # g x / (1 + max(m - 1, 0) x), m the gains' luma: a plain gain when darkening; when
    # brightening, the gain's slope in the shadows and white kept white. At identity the
    # gains are exactly 1 and their luma exactly 1 in float32 (0.9999999999999999 in
    # float64), so the division is by exactly 1.
    x = gains * x / (1.0 + ops.relu(luma(gains) - 1.0) * x)
    x = x + coef[..., 3:4] * x * (1.0 - x) * (2.0 * x - 1.0)
    x = x + coef[..., 4:5] * x * (1.0 - x)
    x = x + (x - luma(x)) * coef[..., 5:6]
    x = x + coef[..., 6:7] * (x - blur(x))
    return ops.clip(x, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="sagim_tf")
class PhotoOperators(keras.layers.Layer):
    """Apply the photographic operators to images under per-pixel parameter fields.

    Called as ``PhotoOperators()([images, fields])`` with ``images`` (B, H, W, 3) in
    [0, 1] and raw ``fields`` (B, h, w, 7), channels in :data:`OPERATOR_NAMES` order.
    Fields of another size than the images are resized bilinearly to the images' size
    first, so a coarse field from a small copy of a photo edits the photo at its own
    resolution; that needs both sizes known when the layer is traced (G's own graph
    passes fields of the image's size, and ``models.generate.apply_fields`` resizes the
    coefficients itself for photos of any size). Returns (B, H, W, 3) in [0, 1]; zero fields return the images.

    Args:
        detail_sigma: float. Sigma in pixels of the blur the detail operator sharpens
            against. Defaults to ``1.5``.

    Example:

    ```python
    import numpy as np
    from sagim_tf.layers import PhotoOperators

    images = np.random.rand(1, 48, 64, 3).astype("float32")
    fields = np.zeros((1, 6, 8, 7), "float32")
    fields[..., 2] = 0.5                       # exposure: +0.46 EV everywhere
    edited = PhotoOperators()([images, fields])
    ```
    """

    def __init__(self, detail_sigma=DETAIL_SIGMA, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.detail_sigma = float(detail_sigma)
        self._blur = GaussianBlur(DETAIL_KERNEL_SIZE, self.detail_sigma, dtype=self.dtype_policy)

    def call(self, inputs):
        images, fields = inputs
        images = ops.convert_to_tensor(images, self.compute_dtype)
        fields = ops.cast(fields, images.dtype)
        height, width = ops.shape(images)[1], ops.shape(images)[2]
        if fields.shape[1] != images.shape[1] or fields.shape[2] != images.shape[2]:
            fields = ops.image.resize(fields, (height, width), interpolation="bilinear")
        return apply_coefficients(images, coefficients(fields), self._blur)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"detail_sigma": self.detail_sigma})
        return config
