"""Classical saliency-retargeting baselines on (image, binary target mask).

Each baseline is ``fn(image (H, W, 3) in [0, 1], target_mask (H, W[, 1])) -> edited``
(float32, same size, in [0, 1]) with keyword arguments for its strengths. They are the
comparison methods of the paper's Table 1 (§4.3), re-implemented from their papers; each
module's docstring gives the reference and what we simplified.

    >>> from sagim_tf.baselines import get_baseline
    >>> edited = get_baseline("wsr")(image, mask_low)
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from sagim_tf.baselines.hag import hag
from sagim_tf.baselines.oha import oha
from sagim_tf.baselines.operator_rule import operator_rule
from sagim_tf.baselines.wsr import wsr
from sagim_tf.utils.errors import ConfigError

BASELINES: dict[str, Callable] = {
    "wsr": wsr,
    "hag": hag,
    "oha": oha,
    "operator-rule": operator_rule,
}


def available_baselines() -> dict[str, str]:
    """Name -> first line of the baseline's module docstring."""
    return {
        name: (sys.modules[fn.__module__].__doc__ or "").strip().splitlines()[0]
        for name, fn in sorted(BASELINES.items())
    }


def get_baseline(name: str) -> Callable:
    """The baseline function registered under ``name`` (case-insensitive)."""
    key = str(name).strip().lower()
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; known: {', '.join(sorted(BASELINES))}")
    return BASELINES[key]


__all__ = ["BASELINES", "available_baselines", "get_baseline", "hag", "oha", "operator_rule", "wsr"]
