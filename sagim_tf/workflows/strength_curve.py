"""Edit strength against guidance consistency: the fixed rule and refinement, side by side.

A saliency edit can buy consistency under a judge by changing the photo more. To compare a
learned edit with the fixed ``operator-rule`` fairly, this workflow puts both on one curve:
the rule at several strengths (its settings scaled: EV times ``s``, each factor raised to
the power ``s``, so ``s = 0`` is the photo and ``s = 1`` the default rule) and an
operator-head G under the binary guiding map, alone and refined with several objective
weightings (a larger ``rec`` weight, or a smaller ``locality``, gives a stronger edit).
Every point is scored under the same judges, with PSNR, ΔE outside the two regions and the
non-affine share beside C1 and C2, so a reader sees at what cost in change each method
reaches a given consistency.

``scripts/strength_curve.py`` runs it on a ``sagim demo`` folder (its G and SAM test split)
and prints the table (docs/evaluation.md, "Strength against consistency").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sagim_tf.baselines._common import check_strength
from sagim_tf.baselines.operator_rule import DEFAULT_DEEMPHASIZE, DEFAULT_EMPHASIZE, operator_rule
from sagim_tf.evaluation.evaluator import evaluate_methods
from sagim_tf.evaluation.records import generator_method
from sagim_tf.utils.errors import ConfigError, InputError

#: Refinement weightings of the default curve: the refiner's own, then two stronger ones.
DEFAULT_REFINE_WEIGHTINGS = (
    {},
    {"rec": 10.0, "locality": 20.0},
    {"rec": 20.0, "locality": 10.0},
)
#: Rule strengths of the default curve.
DEFAULT_RULE_SCALES = (0.5, 1.0, 1.5)
#: The columns of :func:`format_curve` besides the judges' C1/C2.
COLUMNS = ("psnr", "colour_cast_outside", "non_affine")


def check_scale(scale) -> float:
    """A rule strength as a float in [0, 3], or an ``InputError`` that names it."""
    if isinstance(scale, bool):
        raise InputError(f"rule scale must be a number, got {scale!r}")
    return check_strength("rule scale", scale, 0.0, 3.0)


def rule_settings(scale) -> tuple[dict, dict]:
    """``operator-rule``'s (emphasize, deemphasize) settings at strength ``scale``.

    EV is multiplied by ``scale``; saturation and contrast factors are raised to the power
    ``scale`` (their log is scaled), so 0 is the identity and 1 the default rule.
    """
    s = check_scale(scale)

    def scaled(settings):
        return {k: (v * s if k == "ev" else float(v) ** s) for k, v in settings.items()}

    return scaled(DEFAULT_EMPHASIZE), scaled(DEFAULT_DEEMPHASIZE)


def rule_method(scale):
    """An evaluation method: ``operator-rule`` at strength ``scale`` on the binary map."""
    emphasize, deemphasize = rule_settings(scale)

    def method(image, guidance_binary, guidance):
        return operator_rule(image, guidance_binary, emphasize=emphasize, deemphasize=deemphasize)

    return method


def weighting_label(weights: Mapping) -> str:
    """``{"rec": 20, "locality": 10}`` -> ``"rec=20,locality=10"``; ``{}`` -> ``"default"``."""
    if not weights:
        return "default"
    return ",".join(f"{k}={float(v):g}" for k, v in weights.items())


def curve_methods(
    generator,
    estimator,
    rule_scales: Sequence = DEFAULT_RULE_SCALES,
    refine_weightings: Sequence[Mapping] = DEFAULT_REFINE_WEIGHTINGS,
    refine_steps: int = 20,
) -> dict:
    """The curve's methods, by name: ``rule x{s}``, ``G`` and ``G refined (weights)``.

    All of them edit under the binary guiding map (O_low's mask), the baselines' input.
    Refinement weights are checked when the methods are built, so a bad weighting fails
    before any image is edited.
    """
    if not rule_scales and not refine_weightings:
        raise ConfigError("strength curve: no rule scales and no refinement weightings")
    methods = {f"rule x{check_scale(s):g}": rule_method(s) for s in rule_scales}
    methods["G"] = generator_method(generator, "binary")
    for weights in refine_weightings:
        name = f"G refined ({weighting_label(weights)})"
        if name in methods:
            raise ConfigError(f"strength curve: weighting {weighting_label(weights)} given twice")
        methods[name] = generator_method(
            generator,
            "binary",
            refine_steps=refine_steps,
            estimator=estimator,
            refine_weights=dict(weights),
        )
    return methods


def strength_curve(records, methods: Mapping, judges: Mapping) -> dict:
    """Score ``methods`` on ``records`` under ``judges``.

    Returns:
        ``{method: {"psnr", "colour_cast_outside", "non_affine", judge: [c1, c2], ...}}``
        in the order of ``methods``, numbers rounded for printing and JSON.
    """
    result = evaluate_methods(records, methods, judges, progress=False, n_examples=0)
    return {name: summary_row(result.aggregates[name], judges) for name in methods}


def summary_row(aggregate: Mapping, judges) -> dict:
    """One method's aggregate as ``{"psnr", "colour_cast_outside", "non_affine", judge:
    [c1, c2], ...}``, rounded for printing and JSON (also ``scripts/head_experiment.py``'s)."""
    row = {key: round(float(aggregate[key]), 4) for key in COLUMNS}
    for judge in judges:
        row[judge] = [round(float(aggregate["judges"][judge][k]), 1) for k in ("c1", "c2")]
    return row


def format_curve(curve: Mapping, judges: Sequence[str]) -> str:
    """The curve as a Markdown table: method, PSNR, ΔE outside, non-affine, C1/C2 per judge."""
    head = ["method", "PSNR (dB)", "ΔE outside", "non-affine"]
    head += [f"{j} C1/C2" for j in judges]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for name, row in curve.items():
        psnr = row["psnr"]
        cells = [name, "-" if not np.isfinite(psnr) else f"{psnr:.1f}"]
        cells += [f"{row['colour_cast_outside']:.2f}", f"{row['non_affine']:.4f}"]
        cells += [f"{row[j][0]:.1f}/{row[j][1]:.1f}" for j in judges]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
