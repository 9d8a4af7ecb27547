"""Editing photos with a trained SaGIM: the Python API behind ``sagim edit``.

The pieces, each usable on its own:

* :func:`load_editor` reads a ``.keras`` file holding a full :class:`~sagim_tf.SaGIM` or a
  bare :class:`~sagim_tf.SaGIMGenerator` and returns an :class:`Editor` (G plus the
  frozen saliency estimator E).
* :func:`guidance_from_boxes` turns E's map of a photo and user boxes into a guiding map,
  the way the SAM dataset makes its maps from object masks (paper §4.1, DESIGN.md §5).
* :func:`blend_guidance` moves a guiding map part of the way from E(I) to the target.
* :func:`edit_image` runs the whole edit and returns the edit, the guidance used and E's
  maps before and after, all at the input's size.
* :func:`write_edit_figure` writes the five-panel comparison figure.

Images are float32 RGB (H, W, 3) in [0, 1]; maps are float32 (H, W, 1) in [0, 1].

Boxes are ``(x0, y0, x1, y1)`` in pixel coordinates of the input image, x to the right
and y down, with ``x0, y0`` inclusive and ``x1, y1`` exclusive (the convention of Python
slices and ``PIL.Image.crop``): ``(0, 0, W, H)`` is the whole image. Fractional values
are rounded outwards (``floor`` for ``x0, y0``, ``ceil`` for ``x1, y1``). A box that sticks
out of the image is clipped to it; a box with ``x1 <= x0`` or ``y1 <= y0``, or one that
lies entirely outside the image, is an :class:`~sagim_tf.errors.InputError` naming it.
Coordinates are always pixels, never fractions of the image size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from sagim_tf.data.guidance import lower_lift_smooth
from sagim_tf.errors import ConfigError, InputError
from sagim_tf.validation import check_image, check_map

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

FIGURE_LABELS = ("original", "guidance", "edited", "saliency before", "saliency after")


# ---------------------------------------------------------------------------- the editor
@dataclass
class Editor:
    """G and E, ready to edit.

    Attributes:
        generator: the manipulation network G, called as ``G([image, guidance])``.
        estimator: the frozen saliency estimator E, (B, H, W, 3) -> (B, H, W, 1).
        source: where they came from (for messages and logs).
    """

    generator: object
    estimator: object
    source: str = "<memory>"

    @classmethod
    def from_model(cls, model, estimator=None, source="<memory>"):
        """An editor from an in-memory SaGIM (its G and E) or a SaGIMGenerator plus E."""
        from sagim_tf.generator import SaGIMGenerator
        from sagim_tf.trainer import SaGIM

        if isinstance(model, SaGIM):
            return cls(model.generator, estimator if estimator is not None else model.estimator, source)
        if isinstance(model, SaGIMGenerator):
            if estimator is None:
                raise ConfigError(f"{source}: a bare SaGIMGenerator needs an estimator E")
            return cls(model, estimator, source)
        raise InputError(
            f"{source}: holds a {type(model).__name__}, not a SaGIM or a SaGIMGenerator"
        )

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """E's map of one image (H, W, 3) -> (H, W, 1) float32 in [0, 1]."""
        image = check_image(image)
        out = np.asarray(self.estimator(image[None], training=False), dtype=np.float32)[0]
        if out.shape != image.shape[:2] + (1,):
            raise InputError(
                f"{self.source}: the estimator returned a map of shape {out.shape} for an image "
                f"of shape {image.shape}; expected {image.shape[:2] + (1,)}"
            )
        return np.clip(out, 0.0, 1.0)

    def generate(self, image: np.ndarray, guidance: np.ndarray) -> np.ndarray:
        """G's edit of one image under a guiding map of the same size."""
        image = check_image(image)
        guidance = check_map(guidance, "guidance", like=image)
        out = self.generator([image[None], guidance[None]], training=False)
        return np.clip(np.asarray(out, dtype=np.float32)[0], 0.0, 1.0)


def _load_keras(path: str, what: str):
    from sagim_tf.saving import load_model

    return load_model(path, what)


def load_editor(model_path, estimator_spec: str | None = None) -> Editor:
    """Load G and E for editing from a ``.keras`` file.

    Args:
        model_path: a ``.keras`` file holding a full :class:`~sagim_tf.SaGIM` (its G and
            its own E are used) or a bare :class:`~sagim_tf.SaGIMGenerator`.
        estimator_spec: an estimator spec for :func:`~sagim_tf.estimators.build_estimator`
            (``itti-koch``, ``salgan:PATH``, ``keras:PATH``, ...). Required in effect for a
            bare generator, where ``None`` means ``itti-koch``; for a full SaGIM it
            replaces the model's own E (the one G was trained against is usually best).

    Raises:
        InputError: the file is missing, not a ``.keras`` archive, cannot be loaded, or
            holds some other kind of model.
        ConfigError: the estimator spec is invalid.
    """
    from sagim_tf.estimators import build_estimator
    from sagim_tf.generator import SaGIMGenerator

    source = os.fspath(model_path)
    model = _load_keras(source, "model")
    estimator = None
    if estimator_spec is not None:
        estimator = build_estimator(estimator_spec)
    elif isinstance(model, SaGIMGenerator):
        try:
            estimator = build_estimator("itti-koch")
        except ConfigError as exc:
            raise ConfigError(
                f"{source} holds a bare SaGIMGenerator, so it needs an estimator; the default "
                f"'itti-koch' is not available ({exc}); pass an estimator spec (--estimator)"
            ) from exc
    if estimator is not None:
        estimator.trainable = False
    return Editor.from_model(model, estimator=estimator, source=source)


# ---------------------------------------------------------------------------- boxes
def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> four floats; anything else is an InputError naming the text."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or any(not p for p in parts):
        raise InputError(f"box {text!r}: expected four comma-separated numbers x0,y0,x1,y1")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"box {text!r}: expected four comma-separated numbers x0,y0,x1,y1") from None
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
        emphasize: boxes ``(x0, y0, x1, y1)`` (pixels, see the module docstring) to raise.
        deemphasize: boxes to lower.
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
            raise ConfigError(f"guidance_from_boxes: invalid {name} {value!r} "
                              "(0 < raise_to <= 2, 0 <= lower_factor < 1)")
    h, w = s.shape
    sigma = DEFAULT_SIGMA_FRACTION * min(h, w) if smooth_sigma is None else float(smooth_sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"guidance_from_boxes: smooth_sigma must be >= 0, got {smooth_sigma!r}")

    emph = [box_slices(b, h, w, "emphasize box") for b in emphasize]
    deem = [box_slices(b, h, w, "de-emphasize box") for b in deemphasize]

    top = max(1, int(round(REFERENCE_TOP_FRACTION * s.size)))
    reference = max([MIN_REFERENCE, float(np.sort(s, axis=None)[-top:].mean())]
                    + [float(s[rows, cols].mean()) for rows, cols in deem])

    lowered = np.zeros((h, w), bool)
    for rows, cols in deem:
        lowered[rows, cols] = True
    lift = np.zeros((h, w), np.float32)
    for rows, cols in emph:
        mean = float(s[rows, cols].mean())
        lift[rows, cols] = np.maximum(lift[rows, cols], max(0.0, float(raise_to) * reference - mean))
    return lower_lift_smooth(s, lowered, float(lower_factor), lift, sigma)[..., None]


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
        raise InputError(f"guidance: size {t.shape[::-1]} (WxH) differs from the saliency "
                         f"map's {s.shape[::-1]}")
    out = (1.0 - a) * s + a * t
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]


def resize_map(x, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a map (H, W[, 1]) to (height, width, 1), values kept in [0, 1]."""
    m = _as_2d_map(x, "guidance")
    if m.shape == (height, width):
        return m[..., None].astype(np.float32)
    interp = cv2.INTER_AREA if m.shape[0] > height and m.shape[1] > width else cv2.INTER_LINEAR
    out = cv2.resize(m.astype(np.float32), (int(width), int(height)), interpolation=interp)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]


def resize_image(x: np.ndarray, height: int, width: int) -> np.ndarray:
    interp = cv2.INTER_AREA if x.shape[0] > height else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(x, np.float32), (int(width), int(height)), interpolation=interp)
    return out.reshape(height, width, -1)


def work_shape(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The (height, width) G runs at: the input's, or scaled so the longer side is max_side."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / float(max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


# ---------------------------------------------------------------------------- editing
def edit_image(
    editor: Editor,
    image,
    guidance=None,
    emphasize=None,
    deemphasize=None,
    strength: float = 1.0,
    max_side: int | None = None,
    **box_options,
) -> dict:
    """Edit one photo so that E's map of it moves toward a guiding map.

    Give either ``guidance`` (a target map of the image's size) or boxes
    (``emphasize`` and/or ``deemphasize``, built into a target by
    :func:`guidance_from_boxes`, whose options ``raise_to``, ``lower_factor`` and
    ``smooth_sigma`` pass through ``box_options``). The guidance G
    receives is ``blend_guidance(E(I), target, strength)``.

    G is fully convolutional and runs at the photo's own size by default. With
    ``max_side``, a photo whose longer side exceeds it is downscaled for G only; G's change
    (edit minus the downscaled input) is upscaled and added to the full-resolution photo,
    so the output keeps the photo's detail and size.

    Args:
        editor: from :func:`load_editor` or :meth:`Editor.from_model`.
        image: (H, W, 3) float in [0, 1] (uint8 is scaled).
        guidance: (H, W) or (H, W, 1) target map in [0, 1], or None when boxes are given.
        emphasize, deemphasize: lists of boxes ``(x0, y0, x1, y1)`` in pixels.
        strength: A in [0, 1].
        max_side: the largest side G runs at (None: full size).

    Returns:
        dict with float32 arrays at the input's size: ``edited`` (H, W, 3),
        ``guidance`` (the blended map G used, (H, W, 1)), ``target`` (the unblended
        target), ``saliency_before`` = E(I) and ``saliency_after`` = E(edited).
    """
    image = check_image(image)
    if image.ndim != 3:
        raise InputError(f"image: expected one image (H, W, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    a = check_strength(strength)
    has_boxes = bool(emphasize) or bool(deemphasize)
    if (guidance is None) == (not has_boxes):
        raise InputError("give exactly one of: a guidance map, or boxes to emphasize/de-emphasize")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ConfigError(f"max_side must be a positive integer, got {max_side!r}")

    before = editor.saliency(image)
    if guidance is not None:
        target = check_map(guidance, "guidance")
        if target.ndim != 3 or target.shape[:2] != (h, w):
            raise InputError(
                f"guidance: shape {target.shape} does not match the image's {image.shape[:2]} "
                "(resize it first, e.g. with sagim_tf.editing.resize_map)"
            )
    else:
        target = guidance_from_boxes(before, emphasize or (), deemphasize or (), **box_options)
    used = blend_guidance(before, target, a)

    wh, ww = work_shape(h, w, max_side)
    if (wh, ww) == (h, w):
        edited = editor.generate(image, used)
    else:
        small = np.clip(resize_image(image, wh, ww), 0.0, 1.0)
        small_edit = editor.generate(small, resize_map(used, wh, ww))
        residual = resize_image(small_edit - small, h, w)
        edited = np.clip(image + residual, 0.0, 1.0).astype(np.float32)
    after = editor.saliency(edited)
    return {
        "edited": edited,
        "guidance": used,
        "target": target.astype(np.float32),
        "saliency_before": before,
        "saliency_after": after,
    }


# ---------------------------------------------------------------------------- figure
def heatmap(x) -> np.ndarray:
    """A map (H, W[, 1]) in [0, 1] as an RGB uint8 heat map (OpenCV's JET colour map)."""
    m = np.asarray(x, np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    u8 = (np.clip(m, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def _rgb_u8(x) -> np.ndarray:
    return (np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def figure_panel_size(height: int, width: int, panel_height: int | None = None) -> tuple[int, int]:
    """(height, width) of each figure panel: the image's aspect, ``panel_height`` high
    (default: the image's height, kept between 128 and 384 pixels)."""
    ph = int(panel_height) if panel_height else int(min(max(height, 128), 384))
    pw = max(1, round(width * ph / float(height)))
    return ph, pw


def write_edit_figure(path, original, guidance, edited, sal_before, sal_after,
                      panel_height: int | None = None, gap: int = 4, label_height: int = 16) -> str:
    """Write one PNG: original, guidance, edited, saliency before, saliency after.

    The three maps are drawn as heat maps (blue low, red high). Panels keep the image's
    aspect ratio at ``panel_height`` pixels (see :func:`figure_panel_size`), are separated
    by ``gap`` white pixels and labelled above in a strip ``label_height`` high. The file
    is written atomically. Returns the path.
    """
    from PIL import Image, ImageDraw, ImageFont

    from sagim_tf.image_io import atomic_write

    original = check_image(original, "original")
    h, w = original.shape[:2]
    ph, pw = figure_panel_size(h, w, panel_height)
    panels = [_rgb_u8(original), heatmap(guidance), _rgb_u8(check_image(edited, "edited")),
              heatmap(sal_before), heatmap(sal_after)]
    fig = Image.new("RGB", (5 * pw + 4 * gap, ph + label_height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    font = ImageFont.load_default()
    for i, (panel, label) in enumerate(zip(panels, FIGURE_LABELS)):
        if panel.shape[:2] != (h, w):
            raise InputError(f"figure: the {label} panel has shape {panel.shape[:2]}, "
                             f"the original {(h, w)}")
        x = i * (pw + gap)
        img = Image.fromarray(panel)
        if img.size != (pw, ph):
            img = img.resize((pw, ph), Image.BILINEAR)
        fig.paste(img, (x, label_height))
        draw.text((x + 2, 1), label, fill=(0, 0, 0), font=font)
    return atomic_write(path, lambda tmp: fig.save(tmp, format="PNG"), suffix=".png")

