"""What an operator-head edit did, in a photographer's words.

An operator-head G returns raw fields (:mod:`sagim_tf.layers.photo_operators`); this
module turns them into settings in their units (EV, factors) and summarises them per
guided region, e.g. ``emphasized: +0.42 EV, contrast x1.10, saturation x1.25, warmer``.
"""

from __future__ import annotations

import numpy as np

from sagim_tf.layers.photo_operators import (
    OPERATOR_RANGES,
    check_fields,
    operator_names,
)


def operator_settings(fields) -> dict:
    """Raw fields (h, w, 7 or 8) -> ``{operator: (h, w) setting}`` in the operators' units.

    ``exposure`` in EV; ``contrast`` and ``saturation`` as factors (x1 = unchanged);
    ``temperature`` and ``tint`` as log gains (positive: warmer / more magenta); ``tone``
    as the mid-tone lift ``a``; ``detail`` as the sharpening amount (negative: softer);
    with 8 fields (refined), ``clarity`` as the mid-scale contrast amount (negative:
    flatter).
    """
    f = check_fields(fields).astype(np.float64)
    out = {}
    for k, name in enumerate(operator_names(f.shape[-1])):
        value = OPERATOR_RANGES[name] * np.tanh(f[..., k])
        if name in ("contrast", "saturation"):
            value = np.exp2(value)
        out[name] = value
    return out


def _resize_mask(mask, height: int, width: int) -> np.ndarray:
    m = np.asarray(mask, np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape == (height, width):
        return m > 0.5
    ys = (np.arange(height) + 0.5) * m.shape[0] / height
    xs = (np.arange(width) + 0.5) * m.shape[1] / width
    return m[ys.astype(int)[:, None], xs.astype(int)[None, :]] > 0.5


def explain(fields, regions: dict) -> dict:
    """Mean operator settings in each region.

    Args:
        fields: (h, w, 7 or 8) raw fields of one edit.
        regions: ``{name: mask}``, masks of any size (resized to the fields' grid,
            nearest neighbour); an empty region is left out.

    Returns:
        ``{name: {operator: mean setting}}``.
    """
    settings = operator_settings(fields)
    h, w = next(iter(settings.values())).shape
    out = {}
    for name, mask in regions.items():
        m = _resize_mask(mask, h, w)
        if m.any():
            out[name] = {op: float(v[m].mean()) for op, v in settings.items()}
    return out


def describe(settings: dict) -> str:
    """One region's mean settings as a short phrase; near-identity settings are left out."""
    parts = []
    ev = settings.get("exposure", 0.0)
    if abs(ev) >= 0.02:
        parts.append(f"{ev:+.2f} EV")
    for name in ("contrast", "saturation"):
        factor = settings.get(name, 1.0)
        if abs(factor - 1.0) >= 0.01:
            parts.append(f"{name} x{factor:.2f}")
    tone = settings.get("tone", 0.0)
    if abs(tone) >= 0.01:
        parts.append(f"mid-tones {'brighter' if tone > 0 else 'darker'} ({tone:+.2f})")
    temp = settings.get("temperature", 0.0)
    if abs(temp) >= 0.01:
        parts.append(f"{'warmer' if temp > 0 else 'cooler'} (R/B x{np.exp(2 * temp):.2f})")
    tint = settings.get("tint", 0.0)
    if abs(tint) >= 0.01:
        parts.append(f"{'more magenta' if tint > 0 else 'greener'} (G x{np.exp(-tint):.2f})")
    detail = settings.get("detail", 0.0)
    if abs(detail) >= 0.02:
        parts.append(f"{'sharper' if detail > 0 else 'softer'} ({detail:+.2f})")
    clarity = settings.get("clarity", 0.0)
    if abs(clarity) >= 0.02:
        parts.append(f"clarity {clarity:+.2f} ({'more' if clarity > 0 else 'less'} local contrast)")
    return ", ".join(parts) if parts else "unchanged"
