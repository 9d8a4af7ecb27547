"""What a finished ``sagim demo`` folder holds for the scripts that read it.

``scripts/strength_curve.py`` and ``scripts/judge_bound.py`` both take ``--demo DIR`` and
read the operator-head G (``run/generator.keras``) and the SAM data (``sam/``) the demo
wrote. This module names those paths and checks them, without loading TensorFlow, so a
script can refuse a wrong folder before the slow imports.
"""

from __future__ import annotations

import os

from sagim_tf.utils.errors import InputError


def demo_inputs(demo_dir) -> tuple[str, str]:
    """``(generator_path, sam_dir)`` of a ``sagim demo`` folder, or an ``InputError`` that
    names the first one missing."""
    generator = os.path.join(demo_dir, "run", "generator.keras")
    sam = os.path.join(demo_dir, "sam")
    for path in (generator, sam):
        if not os.path.exists(path):
            raise InputError(f"{path} not found; run `sagim demo` first")
    return generator, sam
