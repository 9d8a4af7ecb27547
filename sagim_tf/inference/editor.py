"""Editing photos with a trained SaGIM: the Python API behind ``sagim edit``.

* :func:`load_editor` reads a ``.keras`` file holding a full :class:`~sagim_tf.SaGIM` or a
  bare :class:`~sagim_tf.SaGIMGenerator` and returns an :class:`Editor` (G plus the
  frozen saliency estimator E). The editor runs G through its one cached compiled
  generate step (:func:`~sagim_tf.models.generate.make_generate_function`), the step
  ``SaGIM.edit``, the evaluation methods and the training image grid share.
* :func:`edit_image` runs the whole edit (guidance from a map or from boxes, see
  :mod:`sagim_tf.guidance`) and returns the edit, the guidance used and E's maps before
  and after, all at the input's size.

Images are float32 RGB (H, W, 3) in [0, 1]; maps are float32 (H, W, 1) in [0, 1].
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from sagim_tf.estimators import build_estimator
from sagim_tf.guidance import (
    _as_2d_map,
    blend_guidance,
    check_strength,
    guidance_from_boxes,
    region_mask,
)
from sagim_tf.models.generate import (
    apply_fields,
    generate,
    has_operator_head,
    make_generate_function,
    predict_fields,
    scale_fields,
)
from sagim_tf.models.generator import SaGIMGenerator
from sagim_tf.models.loading import load_model
from sagim_tf.models.sagim import SaGIM
from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError, InputError

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- the editor
@dataclass
class Editor:
    """G and E, ready to edit.

    Attributes:
        generator: the manipulation network G, called as ``G([image, guidance])``.
        estimator: the frozen saliency estimator E, (B, H, W, 3) -> (B, H, W, 1).
        source: where they came from (for messages and logs).
        generate_function: G's compiled generate step (built once, cached per G).
    """

    generator: object
    estimator: object
    source: str = "<memory>"
    generate_function: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.generate_function = make_generate_function(self.generator)

    @classmethod
    def from_model(cls, model, estimator=None, source="<memory>"):
        """An editor from an in-memory SaGIM (its G and E) or a SaGIMGenerator plus E."""
        if isinstance(model, SaGIM):
            return cls(
                model.generator, estimator if estimator is not None else model.estimator, source
            )
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

    def generate(self, image: np.ndarray, guidance: np.ndarray, batch_size: int | None = None):
        """G's edit of an image (H, W, 3) or a batch (B, H, W, 3) under guiding maps.

        Runs :attr:`generate_function`; the result is float32 in [0, 1], of the image's
        shape. See :func:`~sagim_tf.models.generate.generate` for the arguments.
        """
        return generate(self.generator, image, guidance, batch_size=batch_size)


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
    source = os.fspath(model_path)
    model = load_model(source, "model")
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
    out = cv2.resize(
        np.ascontiguousarray(x, np.float32), (int(width), int(height)), interpolation=interp
    )
    return out.reshape(height, width, -1)


def work_shape(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The (height, width) G runs at: the input's, or scaled so the longer side is max_side."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / float(max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


# ---------------------------------------------------------------------------- editing
def _checked_target(guidance, height: int, width: int) -> np.ndarray:
    """A user's target map, checked to be one (H, W, 1) map of the image's size."""
    target = check_map(guidance, "guidance")
    if target.ndim != 3 or target.shape[:2] != (height, width):
        raise InputError(
            f"guidance: shape {target.shape} does not match the image's {(height, width)} "
            "(resize it first, e.g. with sagim_tf.inference.editor.resize_map)"
        )
    return target


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
    ``smooth_sigma`` pass through ``box_options``).

    **Operator head** (``G.head == "operators"``): G runs on a copy whose longer side is
    ``max_side`` (default: ``G.work_size``, the size it was trained at; the log says so),
    under the full target, and predicts operator fields; ``strength`` scales the operator
    settings (0 returns the photo bit for bit) and the fields are applied to the photo at
    its own resolution. E's maps are computed on the small copy and resized.

    **Residual head** (the paper's G): G receives ``blend_guidance(E(I), target,
    strength)``. It is fully convolutional and runs at the photo's own size by default.
    With ``max_side``, a photo whose longer side exceeds it is downscaled for G only; G's
    change (edit minus the downscaled input) is upscaled and added to the full-resolution
    photo, so the output keeps the photo's detail and size.

    Args:
        editor: from :func:`load_editor` or :meth:`Editor.from_model`.
        image: (H, W, 3) float in [0, 1] (uint8 is scaled).
        guidance: (H, W) or (H, W, 1) target map in [0, 1], or None when boxes are given.
        emphasize, deemphasize: lists of boxes ``(x0, y0, x1, y1)`` in pixels.
        strength: A in [0, 1].
        max_side: the largest side G runs at (None: full size for the residual head,
            ``G.work_size`` for the operator head).

    Returns:
        dict with float32 arrays at the input's size: ``edited`` (H, W, 3),
        ``guidance`` (the map G used, (H, W, 1)), ``target`` (the unblended
        target), ``saliency_before`` = E(I) and ``saliency_after`` = E(edited); with the
        operator head also ``fields``, the raw fields applied (h, w, 7) at G's working
        size, already scaled by ``strength``.
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

    if has_operator_head(editor.generator):
        return _edit_with_operators(
            editor, image, guidance, emphasize or (), deemphasize or (), a, max_side, box_options
        )
    before = editor.saliency(image)
    if guidance is not None:
        target = _checked_target(guidance, h, w)
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


def _scaled_region(region, sx: float, sy: float, height: int, width: int):
    """A box scaled by (sx, sy), or a mask resized to (height, width), for G's small copy."""
    arr = np.asarray(region)
    if arr.ndim <= 1:
        x0, y0, x1, y1 = (float(v) for v in region)
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    small = resize_map(arr.astype(np.float32).reshape(arr.shape[:2]), height, width)[..., 0]
    return small > 0.5 if (small > 0.5).any() else small >= small.max()


def _edit_with_operators(
    editor, image, guidance, emphasize, deemphasize, strength, max_side, box_options
) -> dict:
    """:func:`edit_image` for an operator-head G: fields at the work size, applied at full size."""
    generator = editor.generator
    h, w = image.shape[:2]
    work = int(getattr(generator, "work_size", 256)) if max_side is None else max_side
    wh, ww = work_shape(h, w, work)
    if (wh, ww) != (h, w):
        logger.info(
            "G runs at %dx%d (longer side %d%s); its fields are applied at %dx%d",
            ww,
            wh,
            work,
            ", the size it was trained at" if max_side is None else "",
            w,
            h,
        )
    small = image if (wh, ww) == (h, w) else np.clip(resize_image(image, wh, ww), 0.0, 1.0)
    before = editor.saliency(small)
    if guidance is not None:
        target = _checked_target(guidance, h, w)
        target_small = resize_map(target, wh, ww)
    else:
        # regions are checked against the photo the user gave, then scaled to G's copy
        for region in emphasize:
            region_mask(region, h, w, "emphasize")
        for region in deemphasize:
            region_mask(region, h, w, "de-emphasize")
        sx, sy = ww / w, wh / h
        options = dict(box_options)
        if options.get("smooth_sigma") is not None:
            options["smooth_sigma"] = float(options["smooth_sigma"]) * min(sx, sy)
        target_small = guidance_from_boxes(
            before,
            [_scaled_region(r, sx, sy, wh, ww) for r in emphasize],
            [_scaled_region(r, sx, sy, wh, ww) for r in deemphasize],
            **options,
        )
    fields = scale_fields(predict_fields(generator, small, target_small), strength)
    edited = apply_fields(image, fields)
    edited_small = edited if (wh, ww) == (h, w) else np.clip(resize_image(edited, wh, ww), 0, 1)
    after = editor.saliency(edited_small)
    if guidance is not None:
        target_full = target
    else:
        target_full = target_small if (wh, ww) == (h, w) else resize_map(target_small, h, w)
    return {
        "edited": edited,
        "guidance": target_full,
        "target": target_full,
        "saliency_before": resize_map(before, h, w),
        "saliency_after": resize_map(after, h, w),
        "fields": fields,
    }
