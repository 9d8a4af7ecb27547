"""Guiding saliency maps: one home for the rule (paper §4.1, Fig. 3; docs/method.md §2).

The SAM builder makes its maps from object masks with :func:`make_guidance`; editing makes
them from user boxes with :func:`guidance_from_boxes`; both share
:func:`lower_lift_smooth`. :func:`blend_guidance` dials a map between E(I) and a target.

Boxes are ``(x0, y0, x1, y1)`` in pixel coordinates of the input image, x to the right
and y down, with ``x0, y0`` inclusive and ``x1, y1`` exclusive (the convention of Python
slices and ``PIL.Image.crop``): ``(0, 0, W, H)`` is the whole image. Fractional values
are rounded outwards (``floor`` for ``x0, y0``, ``ceil`` for ``x1, y1``). A box that sticks
out of the image is clipped to it; a box with ``x1 <= x0`` or ``y1 <= y0``, or one that
lies entirely outside the image, is an :class:`~sagim_tf.utils.errors.InputError` naming it.

SAM's maps, in detail:

Given E's map ``S`` (H, W) in [0, 1] of an image and the binary masks ``M_1 .. M_n`` of
its candidate objects, :func:`make_guidance` builds:

1. ``m_i = mean(S[M_i])``, each object's mean saliency. ``O_low`` is the object of least
   ``m_i`` and ``O_high`` the one of greatest (ties go to the lower annotation order;
   ``O_high`` is never ``O_low``).
2. Two seeded random factors: ``r ~ U(raise_range)`` (default [0.5, 1.0]) and
   ``b ~ U(lower_range)`` (default [0.2, 0.6]).
3. The modified map ``S1 = S``, then

   - ``S1[M_high] = b * S[M_high]`` (O_high's saliency scaled down by ``b``), then
   - ``S1[M_low] += max(0, r * m_high - m_low)``: O_low is lifted by a constant, so that
     its mean becomes ``r`` times O_high's *original* mean while the structure inside the
     object is kept.

   Pixels in both masks get both changes, lowering first. O_low's target is set relative
   to O_high because the paper's factors are meant to re-order the two objects (§4.1):
   a lift relative to O_low's own mean (our first reading, ``m_low * a`` with
   ``a ~ U(1.5, 3)``) flipped the order in only 37% of the synthetic demo's images, since
   O_low is often several times less salient than O_high, and a generator that matched
   such maps perfectly would still fail C1 on most of them. With ``r >= b`` the order
   flips before smoothing; with the default ranges that is about 97% of draws.
4. Normalisation into [0, 1]: ``S2 = S1 / max(1, max(S1))`` (values are only scaled when
   the raise pushed some above 1, so an unmodified region keeps its value otherwise).
5. Smoothing: ``G = gaussian(S2, sigma)`` with ``sigma = sigma_fraction * min(H, W)``
   pixels (default 0.02, ~3.8 px at 256x192), reflect-padded borders; then clipped to [0, 1]
   (a no-op up to rounding, since Gaussian smoothing is a convex combination).

The binary guiding map is ``M_low`` itself.

Before smoothing, ``mean_low - mean_high`` and ``mean_low / mean_high`` both rise
strictly by construction (and normalisation by a positive constant keeps that). Smoothing
can, in rare thin-object cases, blur the change away, so :func:`make_guidance` checks the
final (uint8-quantised, as stored) map: O_low's mean minus O_high's must rise by at least
``min_gain`` over the original map's. If a draw fails, it draws again (up to
``max_draws``), then tries the strongest factors ``(raise_range[1], lower_range[0])``, and
returns None if even those fail (the builder skips and counts such images).

Whether the order actually flips (``mean_low > mean_high`` in ``G``) depends on the draw
and on smoothing; the builder records the share in its manifest (``counts.flipped``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sagim_tf.utils.checks import check_map
from sagim_tf.utils.errors import ConfigError, InputError


@dataclass(frozen=True)
class GuidanceConfig:
    """Parameters of the guiding-map construction (see the module docstring)."""

    raise_range: tuple = (0.5, 1.0)
    lower_range: tuple = (0.2, 0.6)
    sigma_fraction: float = 0.02
    min_gain: float = 2.0 / 255.0
    max_draws: int = 8

    def __post_init__(self):
        lo, hi = self.raise_range
        if not 0.0 < lo <= hi <= 2.0:
            raise ConfigError(
                f"guidance: raise_range (O_low's target mean as a fraction of O_high's) "
                f"must satisfy 0 < low <= high <= 2, got {self.raise_range}"
            )
        lo, hi = self.lower_range
        if not 0.0 <= lo <= hi < 1.0:
            raise ConfigError(
                f"guidance: lower_range must satisfy 0 <= low <= high < 1, got {self.lower_range}"
            )
        if self.sigma_fraction <= 0:
            raise ConfigError(f"guidance: sigma_fraction must be > 0, got {self.sigma_fraction}")
        if self.max_draws < 1:
            raise ConfigError(f"guidance: max_draws must be >= 1, got {self.max_draws}")
        object.__setattr__(self, "raise_range", tuple(float(v) for v in self.raise_range))
        object.__setattr__(self, "lower_range", tuple(float(v) for v in self.lower_range))


@dataclass
class GuidanceResult:
    """The guiding maps of one image and how they were made (maps are float32 (H, W))."""

    guidance: np.ndarray
    binary: np.ndarray
    low: int
    high: int
    raise_to: float
    lower_factor: float
    means: np.ndarray = field(repr=False)
    draws: int = 1


def quantize(x: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8, rounding to nearest (the stored form of every map)."""
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def object_means(saliency: np.ndarray, masks) -> np.ndarray:
    """Mean of ``saliency`` (H, W) over each boolean mask (H, W); empty masks give NaN."""
    out = []
    for m in masks:
        m = np.asarray(m, bool)
        out.append(float(saliency[m].mean()) if m.any() else float("nan"))
    return np.asarray(out, np.float64)


def relative_saliency(saliency: np.ndarray, mask_low: np.ndarray, mask_high: np.ndarray) -> float:
    """``mean(saliency[mask_low]) - mean(saliency[mask_high])``."""
    s = np.asarray(saliency, np.float64)
    if s.ndim == 3:
        s = s[..., 0]
    return float(s[np.asarray(mask_low, bool)].mean() - s[np.asarray(mask_high, bool)].mean())


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of a (H, W) float map, radius 3 sigma, reflected borders.

    ``sigma <= 0`` returns the map unchanged (as float32).
    """
    x = np.asarray(x, np.float32)
    if sigma <= 0:
        return x
    radius = max(1, int(np.ceil(3.0 * sigma)))
    border = cv2.BORDER_REFLECT_101 if min(x.shape) > 1 else cv2.BORDER_REFLECT
    return cv2.GaussianBlur(
        x, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma, borderType=border
    )


def sigma_pixels(config: GuidanceConfig, height: int, width: int) -> float:
    return float(config.sigma_fraction * min(height, width))


def pick_low_high(means: np.ndarray) -> tuple[int, int]:
    """Indices of the least and most salient objects (distinct; ties -> lower index)."""
    low = int(np.argmin(means))
    order = [i for i in range(len(means)) if i != low]
    high = max(order, key=lambda i: (means[i], -i))
    return low, high


def lower_lift_smooth(
    saliency: np.ndarray, lowered, lower_factor: float, lift, sigma: float
) -> np.ndarray:
    """The SAM rule's map arithmetic (steps 3-5 of the module docstring).

    ``S1 = S``; ``S1[lowered] *= lower_factor``; ``S1 += lift``; ``S2 = S1 / max(1, max(S1))``;
    returns ``clip(gaussian(S2, sigma), 0, 1)`` as float32 (H, W).

    Args:
        saliency: E's map, float (H, W) in [0, 1].
        lowered: boolean (H, W) mask of the pixels to scale down.
        lower_factor: the scale for those pixels.
        lift: float (H, W) map (or a scalar) added after lowering; zero where nothing is
            raised.
        sigma: Gaussian sigma in pixels (0: no smoothing).
    """
    s1 = np.asarray(saliency, np.float32).copy()
    lowered = np.asarray(lowered, bool)
    s1[lowered] = float(lower_factor) * s1[lowered]
    s1 = s1 + np.asarray(lift, np.float32)
    s2 = s1 / max(1.0, float(s1.max()))
    return np.clip(gaussian_smooth(s2, sigma), 0.0, 1.0)


def modify(
    saliency: np.ndarray,
    mask_low,
    mask_high,
    m_low: float,
    m_high: float,
    r: float,
    b: float,
    config: GuidanceConfig,
) -> np.ndarray:
    """Steps 3-5 of the module docstring for given factors; returns float32 (H, W) in [0, 1]."""
    s = np.asarray(saliency, np.float32)
    lift = np.zeros(s.shape, np.float32)
    lift[np.asarray(mask_low, bool)] = max(0.0, r * m_high - m_low)
    h, w = s.shape
    return lower_lift_smooth(s, mask_high, b, lift, sigma_pixels(config, h, w))


def make_guidance(
    saliency: np.ndarray, masks, rng: np.random.Generator, config: GuidanceConfig = GuidanceConfig()
) -> GuidanceResult | None:
    """The continuous and binary guiding maps of one image (see the module docstring).

    Args:
        saliency: E's map, (H, W) or (H, W, 1), in [0, 1]; use the stored (uint8-quantised)
            values so that the check matches what a reader of the dataset sees.
        masks: two or more boolean (H, W) masks of the candidate objects, none empty.
        rng: the seeded generator the factors are drawn from.
        config: the ranges and smoothing.

    Returns:
        A :class:`GuidanceResult`, or None if no draw raised O_low relative to O_high.
    """
    s = np.asarray(saliency, np.float32)
    if s.ndim == 3:
        s = s[..., 0]
    masks = [np.asarray(m, bool) for m in masks]
    if len(masks) < 2 or any(not m.any() for m in masks):
        raise ValueError("make_guidance needs at least two non-empty masks")
    means = object_means(s, masks)
    low, high = pick_low_high(means)
    m_low, m_high = masks[low], masks[high]
    before = relative_saliency(quantize(s) / 255.0, m_low, m_high)

    def attempt(r, b):
        g = modify(s, m_low, m_high, float(means[low]), float(means[high]), r, b, config)
        after = relative_saliency(quantize(g) / 255.0, m_low, m_high)
        return g, after - before >= config.min_gain

    draws = 0
    for _ in range(config.max_draws):
        r = float(rng.uniform(*config.raise_range))
        b = float(rng.uniform(*config.lower_range))
        draws += 1
        g, ok = attempt(r, b)
        if ok:
            break
    else:
        r, b = config.raise_range[1], config.lower_range[0]
        g, ok = attempt(r, b)
        if not ok:
            return None
    return GuidanceResult(
        guidance=g,
        binary=m_low.astype(np.float32),
        low=low,
        high=high,
        raise_to=r,
        lower_factor=b,
        means=means,
        draws=draws,
    )


# ============================================================================ user boxes
#: Defaults of :func:`guidance_from_boxes`: the strong ends of the SAM dataset's random
#: ranges (O_low lifted to [0.5, 1.0] of O_high's mean, O_high scaled by [0.2, 0.6]), so
#: that an edit from boxes asks for a clear change; the smoothing is SAM's (2% of the
#: shorter side).
DEFAULT_RAISE_TO = 1.0
DEFAULT_LOWER_FACTOR = 0.2
DEFAULT_SIGMA_FRACTION = 0.02
#: Emphasized boxes are lifted relative to the mean of the photo's most salient pixels,
#: this fraction of them (or a de-emphasized box's mean, where larger).
REFERENCE_TOP_FRACTION = 0.1
#: The least reference level, so that a box on a photo E finds flat is still lifted.
MIN_REFERENCE = 0.25


# ---------------------------------------------------------------------------- boxes
def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> four floats; anything else is an InputError naming the text."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or any(not p for p in parts):
        raise InputError(f"box {text!r}: expected four comma-separated numbers x0,y0,x1,y1")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"box {text!r}: expected four comma-separated numbers x0,y0,x1,y1"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"box {text!r}: coordinates must be finite numbers")
    return values


def box_slices(box, height: int, width: int, name: str = "box") -> tuple[slice, slice]:
    """The (rows, columns) slices a box covers, clipped to an image of the given size."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"{name} {box!r}: expected four numbers (x0, y0, x1, y1)") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InputError(f"{name} {box!r}: coordinates must be finite numbers")
    if x1 <= x0 or y1 <= y0:
        raise InputError(
            f"{name} ({x0:g},{y0:g},{x1:g},{y1:g}): empty or inverted; need x0 < x1 and y0 < y1"
        )
    c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    c1, r1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if c1 <= c0 or r1 <= r0:
        raise InputError(
            f"{name} ({x0:g},{y0:g},{x1:g},{y1:g}): lies outside the {width}x{height} image"
        )
    return slice(r0, r1), slice(c0, c1)


def _as_2d_map(x, name: str) -> np.ndarray:
    arr = check_map(x, name)
    if arr.ndim != 3:
        raise InputError(f"{name}: expected one map (H, W, 1), got shape {arr.shape}")
    return arr[..., 0]


def guidance_from_boxes(
    saliency,
    emphasize=(),
    deemphasize=(),
    raise_to: float = DEFAULT_RAISE_TO,
    lower_factor: float = DEFAULT_LOWER_FACTOR,
    smooth_sigma: float | None = None,
) -> np.ndarray:
    """A SAM-style guiding map from E's map of a photo and user boxes.

    Boxes play the part of SAM's object masks (paper §4.1): the emphasized ones that of
    the least salient object, which is raised, the de-emphasized ones that of the most
    salient, which is lowered. With ``S`` = E's map (H, W) in [0, 1]:

    1. The reference level ``ref``: the mean of the photo's most salient 10% of pixels, or
       the mean of ``S`` over a de-emphasized box where that is larger, and at least 0.25
       (so that boxes on a photo E finds flat are still lifted).
    2. ``S1 = S``; for the union ``D`` of the de-emphasized boxes,
       ``S1[D] = lower_factor * S[D]`` (saliency scaled down).
    3. For each emphasized box ``B`` with mean ``m_B = mean(S[B])``:
       ``S1[B] += max(0, raise_to * ref - m_B)``, a constant lift that brings the box's
       mean to ``raise_to`` times the reference while keeping E's structure inside it. A
       pixel in several emphasized boxes gets the largest of their lifts; a pixel in both
       kinds of box is lowered first, then lifted.
    4. Normalisation into [0, 1]: ``S2 = S1 / max(1, max(S1))`` (only rescaled when the lift
       pushed values above 1, so untouched regions otherwise keep E's values).
    5. Smoothing to soften the box edges: ``G = clip(gaussian(S2, sigma), 0, 1)``.

    This is the construction the SAM builder uses (O_low lifted relative to O_high, so
    that the order of the two flips), with fixed factors instead of random draws. Before
    smoothing, a de-emphasized box ends at most ``lower_factor`` times E's map, and an
    emphasized box never ends below E's map.

    Args:
        saliency: E's map of the photo, (H, W) or (H, W, 1), in [0, 1].
        emphasize: regions to raise: boxes ``(x0, y0, x1, y1)`` (pixels, see the module
            docstring) or masks of the image's size (an object's cut-out), mixed freely
            (:func:`region_mask`).
        deemphasize: regions to lower, the same way.
        raise_to: in (0, 2]; an emphasized box's mean is lifted to this times ``ref``
            (never lowered).
        lower_factor: in [0, 1); a de-emphasized box's saliency is multiplied by this.
        smooth_sigma: Gaussian sigma in pixels (None: 2% of the shorter side, as in SAM;
            0: no smoothing).

    Returns:
        The guiding map, float32 (H, W, 1) in [0, 1].
    """
    s = _as_2d_map(saliency, "saliency")
    emphasize, deemphasize = list(emphasize or ()), list(deemphasize or ())
    if not emphasize and not deemphasize:
        raise InputError("guidance_from_boxes: give at least one box to emphasize or de-emphasize")
    for value, name, ok in (
        (raise_to, "raise_to", lambda v: 0.0 < v <= 2.0),
        (lower_factor, "lower_factor", lambda v: 0.0 <= v < 1.0),
    ):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(float(value)):
            raise ConfigError(
                f"guidance_from_boxes: invalid {name} {value!r} "
                "(0 < raise_to <= 2, 0 <= lower_factor < 1)"
            )
    h, w = s.shape
    sigma = DEFAULT_SIGMA_FRACTION * min(h, w) if smooth_sigma is None else float(smooth_sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"guidance_from_boxes: smooth_sigma must be >= 0, got {smooth_sigma!r}")

    emph = [region_mask(r, h, w, "emphasize") for r in emphasize]
    deem = [region_mask(r, h, w, "de-emphasize") for r in deemphasize]

    top = max(1, int(round(REFERENCE_TOP_FRACTION * s.size)))
    reference = max(
        [MIN_REFERENCE, float(np.sort(s, axis=None)[-top:].mean())]
        + [float(s[m].mean()) for m in deem]
    )

    lowered = np.zeros((h, w), bool)
    for m in deem:
        lowered |= m
    lift = np.zeros((h, w), np.float32)
    for m in emph:
        mean = float(s[m].mean())
        lift[m] = np.maximum(lift[m], max(0.0, float(raise_to) * reference - mean))
    return lower_lift_smooth(s, lowered, float(lower_factor), lift, sigma)[..., None]


def region_mask(region, height: int, width: int, name: str = "region") -> np.ndarray:
    """A guided region as a boolean (height, width) mask.

    Args:
        region: a box ``(x0, y0, x1, y1)`` in pixels (see the module docstring), or a
            mask (H, W) or (H, W, 1) of the image's size, bool or numbers in [0, 1]
            (pixels above 0.5 are inside), e.g. an object's cut-out.
        height, width: the image's size.
        name: what the region is, for messages.
    """
    arr = np.asarray(region)
    if arr.ndim <= 1:
        rows, cols = box_slices(region, height, width, f"{name} box")
        mask = np.zeros((height, width), bool)
        mask[rows, cols] = True
        return mask
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape != (height, width):
        raise InputError(
            f"{name} mask: shape {arr.shape} does not match the image's {(height, width)}"
        )
    if arr.dtype != bool:
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise InputError(f"{name} mask: values must be finite and in [0, 1]")
        arr = arr > 0.5
    if not arr.any():
        raise InputError(f"{name} mask: is empty (no pixel above 0.5)")
    return arr


# ---------------------------------------------------------------------------- blending
def check_strength(strength) -> float:
    """``strength`` as a float in [0, 1]; anything else is a ConfigError."""
    try:
        a = float(strength)
    except (TypeError, ValueError):
        raise ConfigError(f"strength must be a number in [0, 1], got {strength!r}") from None
    if not math.isfinite(a) or not 0.0 <= a <= 1.0:
        raise ConfigError(f"strength must lie in [0, 1], got {strength!r}")
    return a


def blend_guidance(saliency, target, strength: float) -> np.ndarray:
    """``(1 - A) * E(I) + A * target``: A = 0 asks for no change, A = 1 for the full target.

    Both maps are (H, W, 1) (or (H, W)) in [0, 1] of the same size; returns float32
    (H, W, 1) in [0, 1].
    """
    a = check_strength(strength)
    s = _as_2d_map(saliency, "saliency")
    t = _as_2d_map(target, "guidance")
    if s.shape != t.shape:
        raise InputError(
            f"guidance: size {t.shape[::-1]} (WxH) differs from the saliency map's {s.shape[::-1]}"
        )
    out = (1.0 - a) * s + a * t
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]
