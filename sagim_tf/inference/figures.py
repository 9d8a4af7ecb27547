"""The five-panel edit figure (original, guidance, edited, saliency before and after)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sagim_tf.utils.checks import check_image
from sagim_tf.utils.errors import InputError
from sagim_tf.utils.images import interpolation
from sagim_tf.utils.io import atomic_write

FIGURE_LABELS = ("original", "guidance", "edited", "saliency before", "saliency after")


def heatmap(x) -> np.ndarray:
    """A map (H, W[, 1]) in [0, 1] as an RGB uint8 heat map (OpenCV's JET colour map)."""
    m = np.asarray(x, np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    u8 = (np.clip(m, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def _rgb_u8(x) -> np.ndarray:
    return (np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


#: The longest side a figure panel may have, in pixels: a panorama or a sliver of an image
#: is drawn smaller rather than as a figure hundreds of thousands of pixels wide.
MAX_PANEL_SIDE = 768


def figure_panel_size(height: int, width: int, panel_height: int | None = None) -> tuple[int, int]:
    """(height, width) of each figure panel: the image's aspect, ``panel_height`` high
    (default: the image's height, kept between 128 and 384 pixels), both sides then
    shrunk together so that neither exceeds :data:`MAX_PANEL_SIDE` (at least 1 pixel)."""
    ph = int(panel_height) if panel_height else int(min(max(height, 128), 384))
    pw = width * ph / float(height)
    shrink = min(1.0, MAX_PANEL_SIDE / max(ph, pw))
    return max(1, round(ph * shrink)), max(1, round(pw * shrink))


def diverging(x, limit: float = 1.0) -> np.ndarray:
    """A signed map (H, W) as RGB uint8: blue at ``-limit``, white at 0, red at ``+limit``."""
    v = np.clip(np.asarray(x, np.float32) / float(limit), -1.0, 1.0)[..., None]
    white = np.ones(3, np.float32)
    red, blue = np.array([0.85, 0.1, 0.1], np.float32), np.array([0.1, 0.25, 0.85], np.float32)
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _fit(panel, ph: int, pw: int) -> np.ndarray:
    """Resize an array (H, W[, C]) to the panel size; area averaging when shrinking."""
    a = np.asarray(panel, np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.shape[:2] == (ph, pw):
        return a
    return cv2.resize(
        np.ascontiguousarray(a), (pw, ph), interpolation=interpolation(a.shape[0], ph)
    )


def write_edit_figure(
    path,
    original,
    guidance,
    edited,
    sal_before,
    sal_after,
    panel_height: int | None = None,
    gap: int = 4,
    label_height: int = 16,
    boxes: dict | None = None,
    exposure=None,
) -> str:
    """Write one PNG: original, guidance, edited, saliency before, saliency after.

    The three maps are drawn as heat maps (blue low, red high). Panels keep the image's
    aspect ratio at ``panel_height`` pixels (see :func:`figure_panel_size`), are separated
    by ``gap`` white pixels and labelled above in a strip ``label_height`` high. The file
    is written atomically. Returns the path.

    Args:
        boxes: ``{"emphasize": [...], "deemphasize": [...]}`` boxes ``(x0, y0, x1, y1)`` in
            the original's pixels, drawn on the original (green: emphasize, red:
            de-emphasize). Defaults to None.
        exposure: an operator-head edit's exposure setting in EV, (h, w) of any size;
            adds a sixth panel (blue -1 EV, white 0, red +1 EV). Defaults to None.
    """
    original = check_image(original, "original")
    edited = check_image(edited, "edited")
    h, w = original.shape[:2]
    for name, arr in (
        ("guidance", guidance),
        ("edited", edited),
        ("saliency before", sal_before),
        ("saliency after", sal_after),
    ):
        if np.shape(arr)[:2] != (h, w):
            raise InputError(
                f"figure: the {name} panel has shape {np.shape(arr)[:2]}, the original {(h, w)}"
            )
    ph, pw = figure_panel_size(h, w, panel_height)
    panels = [
        _rgb_u8(_fit(original, ph, pw)),
        heatmap(_fit(guidance, ph, pw)),
        _rgb_u8(_fit(edited, ph, pw)),
        heatmap(_fit(sal_before, ph, pw)),
        heatmap(_fit(sal_after, ph, pw)),
    ]
    labels = list(FIGURE_LABELS)
    if exposure is not None:
        panels.append(diverging(_fit(exposure, ph, pw)))
        labels.append("exposure (EV, -1..+1)")
    n = len(panels)
    fig = Image.new("RGB", (n * pw + (n - 1) * gap, ph + label_height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    font = ImageFont.load_default()
    for i, (panel, label) in enumerate(zip(panels, labels)):
        x = i * (pw + gap)
        fig.paste(Image.fromarray(panel), (x, label_height))
        draw.text((x + 2, 1), label, fill=(0, 0, 0), font=font)
    scale_x, scale_y = pw / w, ph / h
    for kind, colour in (("emphasize", (0, 200, 0)), ("deemphasize", (220, 0, 0))):
        for x0, y0, x1, y1 in (boxes or {}).get(kind, ()):
            draw.rectangle(
                [
                    x0 * scale_x,
                    label_height + y0 * scale_y,
                    x1 * scale_x - 1,
                    label_height + y1 * scale_y - 1,
                ],
                outline=colour,
                width=2,
            )
    return atomic_write(path, lambda tmp: fig.save(tmp, format="PNG"), suffix=".png")
