"""Itti-Koch-Niebur saliency in ``keras.ops``: the weight-free, differentiable default E.

The model follows Itti, Koch and Niebur (1998) closely, with three changes that make it a
smooth function of the image so that SaGIM's generator can be trained through it:

* the red/green/blue/yellow channels use chromaticity coordinates ``c / (r + g + b)``,
  blended smoothly to grey (instead of a hard cut) where the intensity is below 0.1;
* the normalisation operator N(.) (scale a map to a fixed range, then weight it by
  ``(M - mean of local maxima)^2``) counts local maxima, which has no useful gradient.
  We use the stand-in ``N(X) = relu(Xn - m) * (1 - m)^2`` with ``Xn = X / (max X + eps)``
  and ``m = mean(Xn)``: a map with one strong peak (mean far below its maximum) is kept and
  promoted, a map with many comparable peaks (mean close to its maximum) is suppressed, as
  in the original, and the subtraction of the mean plays the part of the global
  inhibition of Itti and Koch's later iterative normalisation (without it the summed maps
  sit on a high floor: half the photograph reads as salient). ``eps`` (0.01, in units of
  image intensity) keeps flat maps at zero instead of inflating noise, so a uniform image
  gives an all-zero map and no NaN;
* centre-surround differences are ``|F(c) - F(s)|`` for every feature, including the
  colour opponents (the paper's ``|(R-G)(c) - (G-R)(s)|`` is read as this double-opponent
  contrast, as most implementations do).

Gradients flow everywhere except through the usual measure-zero kinks of ``abs``,
``max`` and ``relu``.

Working size. The image is resized (bilinear, antialiased) to ``working_size`` (width,
height), 128 x 96 by default, and the map comes back at the input's own size. At that size
the Gaussian pyramid has levels 0-6 (128x96 ... 2x2); centres c in {1, 2, 3} and surrounds
s = c + {2, 3} play the role of Itti's c in {2, 3, 4}, s = c + {3, 4} at the 256x192 input
SalGAN uses, and maps are combined at level 2 (32 x 24), close to Itti's level 4. Any
input size works.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from sagim_tf.estimators.registry import register_estimator
from sagim_tf.utils.errors import ConfigError

_EPS_MAP = 0.01  # contrast below this (in image-intensity units) counts as "no signal"
_EPS_FINAL = 1e-3


def _gaussian_taps() -> np.ndarray:
    return np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


def _gabor_bank(size: int = 5, sigma: float = 1.0, wavelength: float = 3.5) -> np.ndarray:
    """Quadrature Gabor pairs at 0, 45, 90, 135 degrees: kernel (size, size, 1, 8).

    Channels 0-3 are the even (cosine, zero-mean) kernels, 4-7 the odd (sine) kernels; each
    is scaled to unit L1 norm.
    """
    r = (size - 1) / 2.0
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    kernels = []
    for phase in ("even", "odd"):
        for k in range(4):
            theta = k * math.pi / 4.0
            xr = x * math.cos(theta) + y * math.sin(theta)
            yr = -x * math.sin(theta) + y * math.cos(theta)
            envelope = np.exp(-(xr**2 + 0.5**2 * yr**2) / (2.0 * sigma**2))
            carrier = np.cos if phase == "even" else np.sin
            g = envelope * carrier(2.0 * math.pi * xr / wavelength)
            g = g - g.mean() if phase == "even" else g
            kernels.append(g / np.abs(g).sum())
    bank = np.stack(kernels, axis=-1)[:, :, None, :]
    return bank.astype(np.float32)


def _level_sizes(width: int, height: int, levels: int) -> list[tuple[int, int]]:
    """(height, width) of each pyramid level; each level is ceil(previous / 2)."""
    sizes = [(int(height), int(width))]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _smooth_abs(x):
    return ops.sqrt(ops.square(x) + 1e-6)


def _normalize_map(x, eps=_EPS_MAP):
    """The N(.) stand-in, per image and per channel of a (B, h, w, C) stack."""
    peak = ops.max(x, axis=(1, 2), keepdims=True)
    xn = x / (peak + eps)
    spread = ops.mean(xn, axis=(1, 2), keepdims=True)
    return ops.relu(xn - spread) * ops.square(1.0 - spread)


@keras.saving.register_keras_serializable(package="sagim_tf")
class IttiKochSaliency(keras.Model):
    """Weight-free, differentiable Itti-Koch-Niebur saliency: images -> maps in [0, 1].

    Channels: intensity, red-green and blue-yellow opponency, and orientation (quadrature
    Gabor energy at 0, 45, 90 and 135 degrees); a Gaussian pyramid with centre-surround
    differences; a smooth stand-in for N(.); three conspicuity maps summed, blurred and
    scaled per image to [0, 1] by ``map / (max + 1e-3)``; an optional centre bias. See the
    module docstring for every departure from the 1998 paper.

    The model has no weights, is frozen (``trainable`` is False) and accepts any input size
    (B, H, W, 3) in [0, 1]; it resizes to ``working_size`` and back by itself.

    Args:
        working_size: (width, height) at which the pyramid is built. Every pyramid level
            used must be at least 2 x 2.
        centre_levels: pyramid levels used as centres c.
        surround_deltas: surrounds are s = c + delta.
        map_level: pyramid level at which the maps are combined (and the centre bias
            applied) before resizing to the input size.
        centre_bias: weight in [0, 1] of a Gaussian centre prior; the map is multiplied by
            ``(1 - centre_bias) + centre_bias * gaussian``. 0 turns it off.
        centre_bias_sigma: standard deviation of that Gaussian, as a fraction of the
            image's width and height.
        antialias: low-pass the input when shrinking it to ``working_size``. XLA has no
            kernel for TensorFlow's antialiased resize (``ScaleAndTranslate``), so set it
            False for a model compiled with ``jit_compile=True`` (``build_estimator(
            "itti-koch", jit_compile=True)`` does; ``SaGIM.compile`` refuses an antialiased
            E under XLA); at the 2x reductions of training (256x192 -> 128x96) plain bilinear
            resizing already averages 2x2 pixels.
        **kwargs: passed to ``keras.Model`` (``name``, ...).

    Example:
        >>> import numpy as np
        >>> from sagim_tf.estimators.itti_koch import IttiKochSaliency
        >>> estimator = IttiKochSaliency()
        >>> maps = estimator(np.random.rand(2, 192, 256, 3).astype("float32"))
        >>> tuple(maps.shape)
        (2, 192, 256, 1)

    Reference:
        L. Itti, C. Koch and E. Niebur, "A Model of Saliency-Based Visual Attention for Rapid
        Scene Analysis", IEEE TPAMI 20(11), 1998.
    """

    def __init__(
        self,
        working_size=(128, 96),
        centre_levels=(1, 2, 3),
        surround_deltas=(2, 3),
        map_level=2,
        centre_bias=0.0,
        centre_bias_sigma=0.3,
        antialias=True,
        **kwargs,
    ):
        kwargs.pop("trainable", None)
        super().__init__(**kwargs)
        self.working_size = tuple(int(v) for v in working_size)
        self.centre_levels = tuple(int(v) for v in centre_levels)
        self.surround_deltas = tuple(int(v) for v in surround_deltas)
        self.map_level = int(map_level)
        self.centre_bias = float(centre_bias)
        self.centre_bias_sigma = float(centre_bias_sigma)
        self.antialias = bool(antialias)
        self._check_config()
        self.differentiable = True
        self.native_size = self.working_size
        self.trainable = False

        self._pairs = [(c, c + d) for c in self.centre_levels for d in self.surround_deltas]
        self._top = max(max(s for _, s in self._pairs), self.map_level)
        self._sizes = _level_sizes(*self.working_size, self._top)
        if min(self._sizes[self._top]) < 2:
            raise ConfigError(
                f"itti-koch: working_size {self.working_size} is too small for pyramid level "
                f"{self._top} ({self._sizes[self._top]}); use a larger working size or "
                "smaller levels"
            )
        taps = _gaussian_taps()
        self._taps = taps
        self._gabor = _gabor_bank()
        h, w = self._sizes[self.map_level]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        yy = (yy + 0.5) / h - 0.5
        xx = (xx + 0.5) / w - 0.5
        s2 = 2.0 * self.centre_bias_sigma**2
        gauss = np.exp(-(xx**2 + yy**2) / s2).astype(np.float32)
        self._prior = ((1.0 - self.centre_bias) + self.centre_bias * gauss)[None, :, :, None]
        self.built = True  # no weights to create; any input size is accepted

    def _check_config(self):
        if len(self.working_size) != 2 or min(self.working_size) < 8:
            raise ConfigError(
                f"itti-koch: working_size must be (width, height) >= 8, got {self.working_size}"
            )
        if not self.centre_levels or min(self.centre_levels) < 0:
            raise ConfigError(
                f"itti-koch: centre_levels must be non-negative, got {self.centre_levels}"
            )
        if not self.surround_deltas or min(self.surround_deltas) < 1:
            raise ConfigError(
                f"itti-koch: surround_deltas must be >= 1, got {self.surround_deltas}"
            )
        if self.map_level < 0:
            raise ConfigError(f"itti-koch: map_level must be >= 0, got {self.map_level}")
        if not 0.0 <= self.centre_bias <= 1.0:
            raise ConfigError(f"itti-koch: centre_bias must lie in [0, 1], got {self.centre_bias}")
        if self.centre_bias_sigma <= 0.0:
            raise ConfigError(
                f"itti-koch: centre_bias_sigma must be > 0, got {self.centre_bias_sigma}"
            )

    # -- building blocks ------------------------------------------------------------------

    def _blur(self, x, channels, stride):
        """5 x 5 Gaussian, symmetric padding, optional stride 2 (the pyramid's REDUCE)."""
        taps = ops.convert_to_tensor(self._taps, dtype=x.dtype)
        kernel = ops.reshape(taps, (5, 1)) * ops.reshape(taps, (1, 5))
        kernel = ops.tile(ops.reshape(kernel, (5, 5, 1, 1)), (1, 1, channels, 1))
        x = ops.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
        return ops.depthwise_conv(x, kernel, strides=stride, padding="valid")

    def _orientation(self, intensity):
        bank = ops.convert_to_tensor(self._gabor, dtype=intensity.dtype)
        x = ops.pad(intensity, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
        r = ops.conv(x, bank, strides=1, padding="valid")
        even, odd = r[..., :4], r[..., 4:]
        return ops.sqrt(ops.square(even) + ops.square(odd) + 1e-6)

    @staticmethod
    def _features(rgb):
        r, g, b = rgb[..., 0:1], rgb[..., 1:2], rgb[..., 2:3]
        total = r + g + b
        intensity = total / 3.0
        gate = ops.sigmoid((intensity - 0.1) / 0.02)
        inv = gate / (total + 1e-3)
        grey = (1.0 - gate) / 3.0
        rn, gn, bn = r * inv + grey, g * inv + grey, b * inv + grey
        red = rn - (gn + bn) / 2.0
        green = gn - (rn + bn) / 2.0
        blue = bn - (rn + gn) / 2.0
        yellow = (rn + gn) / 2.0 - _smooth_abs(rn - gn) / 2.0 - bn
        return ops.concatenate([intensity, red - green, blue - yellow], axis=-1)

    # -- forward --------------------------------------------------------------------------

    def call(self, images, training=False):
        images = ops.convert_to_tensor(images)
        if images.dtype != "float32":
            images = ops.cast(images, "float32")
        in_h, in_w = ops.shape(images)[1], ops.shape(images)[2]
        ww, wh = self.working_size
        x = ops.image.resize(images, (wh, ww), interpolation="bilinear", antialias=self.antialias)
        x = ops.clip(x, 0.0, 1.0)

        levels = [self._features(x)]
        for _ in range(self._top):
            levels.append(self._blur(levels[-1], 3, 2))
        feats = [ops.concatenate([lv, self._orientation(lv[..., 0:1])], axis=-1) for lv in levels]

        target = self._sizes[self.map_level]
        total = None
        for c, s in self._pairs:
            surround = ops.image.resize(feats[s], self._sizes[c], interpolation="bilinear")
            cs = _normalize_map(ops.abs(feats[c] - surround))
            if self._sizes[c] != target:
                cs = ops.image.resize(cs, target, interpolation="bilinear")
            total = cs if total is None else total + cs

        intensity = total[..., 0:1]
        colour = total[..., 1:2] + total[..., 2:3]
        orient = ops.sum(_normalize_map(total[..., 3:7]), axis=-1, keepdims=True)
        consp = _normalize_map(ops.concatenate([intensity, colour, orient], axis=-1))
        sal = ops.mean(consp, axis=-1, keepdims=True)
        sal = sal * ops.convert_to_tensor(self._prior, dtype=sal.dtype)
        sal = self._blur(sal, 1, 1)
        sal = sal / (ops.max(sal, axis=(1, 2), keepdims=True) + _EPS_FINAL)
        sal = ops.image.resize(sal, (in_h, in_w), interpolation="bilinear")
        return ops.clip(sal, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def fine_copy(self) -> IttiKochSaliency:
        """The same model read at its finest scales: centres at level 0, surrounds one and
        two levels up, maps combined at level 0.

        Same working size, centre bias and resizing; only the scales change. At the
        default 128 x 96 the centres are the working image itself, the surrounds 64 x 48
        and 32 x 24, and the map is built at 128 x 96 (the default reads centres at
        64 x 48 to 16 x 12 against surrounds two and three levels up, and combines at
        32 x 24). Its centre-surround differences answer a change along an object's outline
        and in its texture more than a blob in its middle, which is what refinement adds it
        for (:mod:`sagim_tf.models.refine`).
        """
        config = {
            **self.get_config(),
            "centre_levels": [0],
            "surround_deltas": [1, 2],
            "map_level": 0,
            "name": f"{self.name}_fine",
        }
        return type(self).from_config(config)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "working_size": list(self.working_size),
                "centre_levels": list(self.centre_levels),
                "surround_deltas": list(self.surround_deltas),
                "map_level": self.map_level,
                "centre_bias": self.centre_bias,
                "centre_bias_sigma": self.centre_bias_sigma,
                "antialias": self.antialias,
            }
        )
        return config


def build_itti_koch(jit_compile: bool = False) -> IttiKochSaliency:
    """Factory for the ``itti-koch`` spec: the defaults above, no centre bias.

    Args:
        jit_compile: bool. Build the XLA-compatible form (``antialias=False``).
            Defaults to ``False``.
    """
    return IttiKochSaliency(antialias=not jit_compile, name="itti_koch")


register_estimator(
    "itti-koch",
    build_itti_koch,
    help="weight-free, differentiable Itti-Koch-Niebur saliency (the default E)",
)
