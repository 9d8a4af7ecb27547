"""The judge in the loop: how far an operator edit can go when its E is the judge itself.

Refined G is scored by judges it never saw. When it trails a baseline under one of them,
two things can be at fault: E, whose reading the edit is fitted to, may disagree with the
judge on those images; or the edit itself (its operators, the guided-filter smoothing of
its fields, the prices on locality and settings, its 20 steps) may be unable to do what
the judge asks at the realism it is held to. This workflow tells the two apart. It
refines G's fields for every image twice under the binary guiding map, once against E
(the refiner as shipped) and once against a differentiable copy of the spectral-residual
judge (:class:`~sagim_tf.estimators.spectral_residual.SpectralResidualSaliency`) with
everything else the same, and scores both, with the baselines, under the same judges.

The second row is a measurement, not a method: fitted to the judge, it is the most that
edit can score under spectral residual. If it does not lead a baseline there, no E
would make it lead. The copy has no fine-scale reading, so it carries the weight both of
E's terms carry under a mask (``rec`` + ``fine`` of
:data:`~sagim_tf.models.refine.REFINE_WEIGHTS`, 12.5).

``scripts/judge_bound.py`` runs it on a ``sagim demo`` folder (docs/training.md,
"The judge in the loop").
"""

from __future__ import annotations

from collections.abc import Sequence

from sagim_tf.estimators.spectral_residual import SpectralResidualSaliency
from sagim_tf.evaluation.evaluator import baseline_methods
from sagim_tf.evaluation.records import generator_method
from sagim_tf.models.refine import DEFAULT_REFINE_STEPS, REFINE_WEIGHTS, check_refine_steps
from sagim_tf.utils.errors import ConfigError

#: The method names of :func:`bound_methods`' two refined rows.
AGAINST_E = "G refined against E"
AGAINST_JUDGE = "G refined against spectral residual (the judge in the loop)"
#: Refinement weights against the judge's copy: its one term weighs what E's two do.
JUDGE_WEIGHTS = {"rec": REFINE_WEIGHTS["rec"] + REFINE_WEIGHTS["fine"]}


def bound_methods(
    generator,
    estimator,
    refine_steps: int = DEFAULT_REFINE_STEPS,
    baselines: Sequence[str] = ("hag",),
) -> dict:
    """The workflow's methods, by name: G refined against E, against the judge's copy, and
    each baseline in ``baselines`` (names of :mod:`sagim_tf.baselines`), all under the
    binary guiding map (O_low's mask)."""
    steps = check_refine_steps(refine_steps)
    if steps == 0:
        raise ConfigError("judge bound: refine steps must be >= 1 (0 would not refine)")
    methods = {
        AGAINST_E: generator_method(generator, "binary", refine_steps=steps, estimator=estimator),
        AGAINST_JUDGE: generator_method(
            generator,
            "binary",
            refine_steps=steps,
            estimator=SpectralResidualSaliency(),
            refine_weights=JUDGE_WEIGHTS,
        ),
    }
    methods.update(baseline_methods(tuple(baselines)))
    return methods
