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

import functools
import logging
import os
from collections.abc import MutableMapping
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
from sagim_tf.models.refine import FieldRefiner, check_refine_steps
from sagim_tf.models.sagim import SaGIM
from sagim_tf.utils.checks import check_image, check_map
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.images import resize_image, small_copy
from sagim_tf.utils.io import check_array_pixels, to_uint8

logger = logging.getLogger(__name__)

#: The most pixels the residual head's G runs at when no ``max_side`` is given: above it,
#: G runs on a copy of about this many pixels and its change is upscaled (the
#: ``max_side`` path). G's activations take about 1 GB per megapixel at the default
#: width, so a 12-megapixel photo at full size would need over 10 GB; with this budget a
#: 12-megapixel ``sagim edit`` peaks at about 2 GB (docs/editing.md, "Limits").
WORK_PIXELS = 786_432  # 1024 x 768


# ---------------------------------------------------------------------------- the editor
@dataclass
class Editor:
    """G and E, ready to edit.

    Attributes:
        generator: the manipulation network G, called as ``G([image, guidance])``.
        estimator: the frozen saliency estimator E, (B, H, W, 3) -> (B, H, W, 1).
        source: where they came from (for messages and logs).
        max_pixels: the pixel budget of the arrays :meth:`saliency`, :meth:`generate` and
            :func:`edit_image` take (None: ``$SAGIM_MAX_PIXELS`` or 100 megapixels, as for
            files; :func:`~sagim_tf.utils.io.check_array_pixels`).
        generate_function: G's compiled generate step (built once, cached per G).
    """

    generator: object
    estimator: object
    source: str = "<memory>"
    max_pixels: int | None = None
    generate_function: object = field(init=False, repr=False, compare=False)
    _refiners: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.generate_function = make_generate_function(self.generator)

    def refiner(self, steps: int) -> FieldRefiner:
        """The :class:`~sagim_tf.models.refine.FieldRefiner` of G and E for ``steps`` steps
        (built once per step count: its compiled loop is reused across photos)."""
        steps = check_refine_steps(steps)
        if steps not in self._refiners:
            self._refiners[steps] = FieldRefiner(self.generator, self.estimator, steps=steps)
        return self._refiners[steps]

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
        """E's map of one image (H, W, 3) -> (H, W, 1) float32 in [0, 1].

        An image above the pixel budget (:attr:`max_pixels`) is refused before E runs.
        """
        check_array_pixels(image, "image", self.max_pixels)
        return self._saliency(image)

    def _saliency(self, image: np.ndarray) -> np.ndarray:
        """:meth:`saliency` without the budget (callers have checked the photo)."""
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
        shape. See :func:`~sagim_tf.models.generate.generate` for the arguments. A batch
        of more than :attr:`max_pixels` pixels (B x H x W) is refused before G runs.
        """
        check_array_pixels(image, "image", self.max_pixels)
        return self._generate(image, guidance, batch_size)

    def _generate(self, image, guidance, batch_size=None):
        """:meth:`generate` without the budget (callers have checked the photo)."""
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
    return np.clip(out, 0.0, 1.0, out=out)[..., None]


def budget_side(height: int, width: int, pixels: int) -> int | None:
    """The longer side of a copy of about ``pixels`` pixels (None: the photo fits)."""
    if height * width <= pixels:
        return None
    scale = (pixels / float(height * width)) ** 0.5
    return max(1, int(max(height, width) * scale))


def work_shape(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The (height, width) G runs at: the input's, or scaled so the longer side is max_side."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / float(max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


# ---------------------------------------------------------------------------- editing
class EditResult(MutableMapping):
    """What :func:`edit_image` returns: a dict-like mapping of name -> array.

    Entries may be given as zero-argument functions (``lazy``) that make them when they
    are first read, after which they are kept like any other; iteration, ``len``, ``in``,
    ``get``, ``dict(result)`` and item assignment behave as for a dict. The operator head
    uses this for its maps at the photo's size, so an edit that only needs ``edited``
    does not resize them (at 12 megapixels, three float32 maps of 48 MB each).

    Args:
        values: dict. Entries already made, in order.
        lazy: dict. name -> function making that entry, after ``values``'s.
        **more: entries made, after ``lazy``'s.
    """

    def __init__(self, values=None, lazy=None, **more):
        self._values = dict(values or {})
        self._lazy = {k: v for k, v in (lazy or {}).items() if k not in self._values}
        self._keys = list(self._values) + list(self._lazy)
        for key, value in more.items():
            self[key] = value

    def __getitem__(self, key):
        if key not in self._values:
            if key not in self._lazy:
                raise KeyError(key)
            self._values[key] = self._lazy.pop(key)()
        return self._values[key]

    def __setitem__(self, key, value):
        if key not in self._values and key not in self._lazy:
            self._keys.append(key)
        self._lazy.pop(key, None)
        self._values[key] = value

    def __delitem__(self, key):
        if key not in self._values and key not in self._lazy:
            raise KeyError(key)
        self._values.pop(key, None)
        self._lazy.pop(key, None)
        self._keys.remove(key)

    def __iter__(self):
        return iter(list(self._keys))

    def __len__(self):
        return len(self._keys)

    def __repr__(self):
        made = ", ".join(k for k in self._keys if k in self._values)
        lazy = ", ".join(k for k in self._keys if k in self._lazy)
        return f"EditResult(made: [{made}], made when read: [{lazy}])"


def _checked_photo(image) -> np.ndarray:
    """One photo (H, W, 3): uint8 as it is (every value is a pixel), else checked float32."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = check_image(arr)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.size == 0:
        raise InputError(f"image: expected one image (H, W, 3), got shape {arr.shape}")
    return arr


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
    work_pixels: int | None = None,
    max_pixels: int | None = None,
    refine: int = 0,
    **box_options,
) -> EditResult:
    """Edit one photo so that E's map of it moves toward a guiding map.

    Give either ``guidance`` (a target map of the image's size) or boxes
    (``emphasize`` and/or ``deemphasize``, built into a target by
    :func:`guidance_from_boxes`, whose options ``raise_to``, ``lower_factor`` and
    ``smooth_sigma`` pass through ``box_options``).

    **Operator head** (``G.head == "operators"``): G runs on a copy whose longer side is
    ``max_side`` (default: ``G.work_size``, the size it was trained at; the log says so),
    under the full target, and predicts operator fields; ``strength`` scales the operator
    settings (0 returns the photo bit for bit) and the fields are applied to the photo at
    its own resolution. E's maps are computed on the small copy (the map after on G's
    own edit of it, the fields applied at their own size) and resized.

    **Residual head** (the paper's G): G receives ``blend_guidance(E(I), target,
    strength)``. It is fully convolutional and runs at the photo's own size by default.
    With ``max_side``, a photo whose longer side exceeds it is downscaled for G only; G's
    change (edit minus the downscaled input) is upscaled and added to the full-resolution
    photo, so the output keeps the photo's detail and size. Without ``max_side``, a photo
    of more than ``work_pixels`` pixels (default :data:`WORK_PIXELS`) takes this path too,
    with a copy of about ``work_pixels`` pixels, and the log says so (a warning). On this
    path E runs on G's copy too, once before (its map is the one the guidance rule and
    ``saliency_before`` use, resized) and once on G's edit of it, never at the photo's
    size.

    **Pixel budget**: an ``image`` (or a ``guidance`` map or mask) of more pixels than
    ``max_pixels`` is refused with an :class:`~sagim_tf.utils.errors.InputError` before
    anything is copied or run, as files are on decode
    (:func:`~sagim_tf.utils.io.check_array_pixels`).

    Args:
        editor: from :func:`load_editor` or :meth:`Editor.from_model`.
        image: (H, W, 3) float in [0, 1], or uint8 (read as ``k / 255``): then the edit
            is uint8 too, so a decoded photo is edited and encoded without a float copy
            at full size (the operator head).
        guidance: (H, W) or (H, W, 1) target map in [0, 1], or None when boxes are given.
        emphasize, deemphasize: lists of boxes ``(x0, y0, x1, y1)`` in pixels.
        strength: A in [0, 1].
        max_side: the largest side G runs at (None: full size for the residual head up to
            ``work_pixels``, ``G.work_size`` for the operator head).
        work_pixels: the residual head's working budget without ``max_side`` (None:
            :data:`WORK_PIXELS`); the operator head always runs G at its work size.
        max_pixels: the most pixels an input may have (None: ``editor.max_pixels``, else
            ``$SAGIM_MAX_PIXELS``, else 100 megapixels; ``sagim edit --max-pixels``).
        refine: int. Operator head only: refine G's fields on its copy by this many steps
            against E before they are scaled and applied
            (:class:`~sagim_tf.models.refine.FieldRefiner`; ``sagim edit --refine``).
            Defaults to 0 (G's fields as they are).

    Returns:
        An :class:`EditResult` (a dict-like mapping) of arrays at the input's size:
        ``edited`` (H, W, 3), float32 in [0, 1], or for a uint8 photo uint8, the float
        edit rounded as :func:`~sagim_tf.utils.io.to_uint8` rounds; float32 maps
        ``guidance`` (the map G used, (H, W, 1)), ``target`` (the unblended target),
        ``saliency_before`` = E(I) and ``saliency_after`` = E(edited); with the operator
        head also ``fields``, the raw fields applied (h, w, 7) at G's working size
        ((h, w, 8), with clarity, when refined), already scaled by ``strength``. The
        operator head's maps are resized to the photo's size when first read.
    """
    limit = editor.max_pixels if max_pixels is None else max_pixels
    check_array_pixels(image, "image", limit)  # from the shapes: before any copy or run
    if guidance is not None:
        check_array_pixels(guidance, "guidance", limit)
    for what, regions in (("emphasize", emphasize), ("deemphasize", deemphasize)):
        for region in regions or ():
            if np.ndim(region) >= 2:
                check_array_pixels(region, f"{what} mask", limit)
    photo = _checked_photo(image)
    h, w = photo.shape[:2]
    a = check_strength(strength)
    has_boxes = bool(emphasize) or bool(deemphasize)
    if (guidance is None) == (not has_boxes):
        raise InputError("give exactly one of: a guidance map, or boxes to emphasize/de-emphasize")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ConfigError(f"max_side must be a positive integer, got {max_side!r}")
    if work_pixels is not None and (not isinstance(work_pixels, int) or work_pixels < 1):
        raise ConfigError(f"work_pixels must be a positive integer, got {work_pixels!r}")
    refine = check_refine_steps(refine)

    if has_operator_head(editor.generator):
        return _edit_with_operators(
            editor,
            photo,
            guidance,
            emphasize or (),
            deemphasize or (),
            a,
            max_side,
            box_options,
            refine,
        )
    if refine:
        raise ConfigError(
            "refine needs an operator-head G (it refines the operator fields); "
            f"{editor.source} has a residual head"
        )
    image = check_image(photo) if photo.dtype == np.uint8 else photo
    if max_side is None:
        budget = WORK_PIXELS if work_pixels is None else work_pixels
        max_side = budget_side(h, w, budget)
        if max_side is not None:
            wh, ww = work_shape(h, w, max_side)
            logger.warning(
                "the photo's %dx%d (%s pixels) is above G's working budget of %s pixels: "
                "G runs on a %dx%d copy and its change is upscaled to the photo (choose the "
                "size with --max-side / max_side, the budget with --work-pixels / work_pixels)",
                w,
                h,
                f"{h * w:,}",
                f"{budget:,}",
                ww,
                wh,
            )
    wh, ww = work_shape(h, w, max_side)
    full = (wh, ww) == (h, w)
    # E runs once on what G sees: the photo, or G's copy of it (then its map is resized
    # for the guidance rule and the result; never a second E pass at the photo's size)
    small = image if full else np.clip(resize_image(image, wh, ww), 0.0, 1.0)
    before_small = editor._saliency(small)
    before = before_small if full else resize_map(before_small, h, w)
    if guidance is not None:
        target = _checked_target(guidance, h, w)
    else:
        target = guidance_from_boxes(before, emphasize or (), deemphasize or (), **box_options)
    used = blend_guidance(before, target, a)

    if full:
        edited = editor._generate(image, used)
        after = editor._saliency(edited)
        lazy = {}
    else:
        small_edit = editor._generate(small, resize_map(used, wh, ww))
        residual = resize_image(small_edit - small, h, w)
        edited = np.clip(image + residual, 0.0, 1.0).astype(np.float32)
        after_small = editor._saliency(small_edit)  # E of G's edit of its copy, as above
        lazy = {"saliency_after": lambda: resize_map(after_small, h, w)}
    values = {
        "edited": to_uint8(edited) if photo.dtype == np.uint8 else edited,
        "guidance": used,
        "target": target.astype(np.float32),
        "saliency_before": before,
    }
    if full:
        values["saliency_after"] = after
    return EditResult(values, lazy=lazy)


def _scaled_region(region, sx: float, sy: float, height: int, width: int):
    """A box scaled by (sx, sy), or a mask resized to (height, width), for G's small copy."""
    arr = np.asarray(region)
    if arr.ndim <= 1:
        x0, y0, x1, y1 = (float(v) for v in region)
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    small = resize_map(arr.astype(np.float32).reshape(arr.shape[:2]), height, width)[..., 0]
    return small > 0.5 if (small > 0.5).any() else small >= small.max()


def _edit_with_operators(
    editor, image, guidance, emphasize, deemphasize, strength, max_side, box_options, refine=0
) -> EditResult:
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
    small = small_copy(image, wh, ww)
    before = editor._saliency(small)
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
    fields = predict_fields(generator, small, target_small)
    if refine:
        fields = editor.refiner(refine)(small, target_small, fields)
    fields = scale_fields(fields, strength)
    # E's map after the edit, on G's own edit of its copy (the fields at their own size)
    # rather than on the full-size edit shrunk again: the same edit, without a second
    # pass over every pixel of the photo
    edited_small = apply_fields(small, fields)
    if (wh, ww) != (h, w):
        edited = apply_fields(image, fields, work_image=small)
    else:
        edited = to_uint8(edited_small) if image.dtype == np.uint8 else edited_small
    after = editor._saliency(edited_small)
    # maps at the photo's size are made when first read (at 12 MP, 48 MB each)
    if guidance is not None:
        made, lazy = {"edited": edited, "guidance": target, "target": target}, {}
    else:
        target_full = functools.cache(lambda: resize_map(target_small, h, w))
        made, lazy = {"edited": edited}, {"guidance": target_full, "target": target_full}
    lazy["saliency_before"] = lambda: resize_map(before, h, w)
    lazy["saliency_after"] = lambda: resize_map(after, h, w)
    return EditResult(made, lazy=lazy, fields=fields)
