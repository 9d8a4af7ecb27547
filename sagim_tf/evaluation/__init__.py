"""Evaluation: Guidance Consistency and distortion metrics, judges, the evaluator, reports.

- :mod:`~sagim_tf.evaluation.metrics`: C1/C2, CC, KL, MSE, PSNR, SSIM on single images.
- :mod:`~sagim_tf.evaluation.judges`: the saliency estimators that score edits.
- :mod:`~sagim_tf.evaluation.evaluator`: methods x judges over records.
- :mod:`~sagim_tf.evaluation.report`: results.json, results.md (paper tables), PNG grids.
- :mod:`~sagim_tf.evaluation.run`: :func:`evaluate_model`, the API behind ``sagim evaluate``.
"""

from sagim_tf.evaluation.evaluator import (
    EvaluationResult,
    baseline_methods,
    evaluate_methods,
    identity_method,
    run_judge,
)
from sagim_tf.evaluation.judges import build_judges, default_judge_specs, judge_label
from sagim_tf.evaluation.metrics import (
    aggregate,
    cc,
    changed_outside,
    guidance_consistency,
    kl,
    mse,
    psnr,
    region_mean,
    ssim,
)
from sagim_tf.evaluation.report import (
    format_ablation_table,
    format_results_md,
    format_table1,
    write_example_grid,
    write_report,
    write_results_json,
    write_results_md,
)
from sagim_tf.evaluation.run import evaluate_model

__all__ = [
    "EvaluationResult",
    "aggregate",
    "baseline_methods",
    "build_judges",
    "cc",
    "changed_outside",
    "default_judge_specs",
    "evaluate_methods",
    "evaluate_model",
    "format_ablation_table",
    "format_results_md",
    "format_table1",
    "guidance_consistency",
    "identity_method",
    "judge_label",
    "kl",
    "mse",
    "psnr",
    "region_mean",
    "run_judge",
    "ssim",
    "write_example_grid",
    "write_report",
    "write_results_json",
    "write_results_md",
]
