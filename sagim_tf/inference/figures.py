"""The five-panel edit figure (original, guidance, edited, saliency before and after)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sagim_tf.utils.checks import check_image
from sagim_tf.utils.errors import InputError
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


def figure_panel_size(height: int, width: int, panel_height: int | None = None) -> tuple[int, int]:
    """(height, width) of each figure panel: the image's aspect, ``panel_height`` high
    (default: the image's height, kept between 128 and 384 pixels)."""
    ph = int(panel_height) if panel_height else int(min(max(height, 128), 384))
    pw = max(1, round(width * ph / float(height)))
    return ph, pw


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
) -> str:
    """Write one PNG: original, guidance, edited, saliency before, saliency after.

    The three maps are drawn as heat maps (blue low, red high). Panels keep the image's
    aspect ratio at ``panel_height`` pixels (see :func:`figure_panel_size`), are separated
    by ``gap`` white pixels and labelled above in a strip ``label_height`` high. The file
    is written atomically. Returns the path.
    """
    original = check_image(original, "original")
    h, w = original.shape[:2]
    ph, pw = figure_panel_size(h, w, panel_height)
    panels = [
        _rgb_u8(original),
        heatmap(guidance),
        _rgb_u8(check_image(edited, "edited")),
        heatmap(sal_before),
        heatmap(sal_after),
    ]
    fig = Image.new("RGB", (5 * pw + 4 * gap, ph + label_height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    font = ImageFont.load_default()
    for i, (panel, label) in enumerate(zip(panels, FIGURE_LABELS)):
        if panel.shape[:2] != (h, w):
            raise InputError(
                f"figure: the {label} panel has shape {panel.shape[:2]}, the original {(h, w)}"
            )
        x = i * (pw + gap)
        img = Image.fromarray(panel)
        if img.size != (pw, ph):
            img = img.resize((pw, ph), Image.BILINEAR)
        fig.paste(img, (x, label_height))
        draw.text((x + 2, 1), label, fill=(0, 0, 0), font=font)
    return atomic_write(path, lambda tmp: fig.save(tmp, format="PNG"), suffix=".png")
