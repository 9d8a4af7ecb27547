"""Saliency estimators E: one interface, built from spec strings (see ``registry``)."""

from sagim_tf.estimators.base import ResizingEstimator
from sagim_tf.estimators.registry import available_estimators, build_estimator, register_estimator

__all__ = ["ResizingEstimator", "available_estimators", "build_estimator", "register_estimator"]
