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
