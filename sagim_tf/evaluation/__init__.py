"""Evaluation: Guidance Consistency and distortion metrics, the method/judge evaluator, reports."""

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

__all__ = [
    "aggregate",
    "cc",
    "changed_outside",
    "guidance_consistency",
    "kl",
    "mse",
    "psnr",
    "region_mean",
    "ssim",
]

from sagim_tf.evaluation.evaluator import (  # noqa: E402
    EvaluationResult,
    baseline_methods,
    evaluate_methods,
    identity_method,
    run_judge,
)
from sagim_tf.evaluation.report import (  # noqa: E402
    format_ablation_table,
    format_results_md,
    format_table1,
    write_example_grid,
    write_report,
    write_results_json,
    write_results_md,
)

__all__ += [
    "EvaluationResult",
    "baseline_methods",
    "evaluate_methods",
    "identity_method",
    "run_judge",
    "format_ablation_table",
    "format_results_md",
    "format_table1",
    "write_example_grid",
    "write_report",
    "write_results_json",
    "write_results_md",
]

from sagim_tf.evaluation.run import evaluate_model  # noqa: E402

__all__ += ["evaluate_model"]
