"""What ``SaGIM.compile`` sets up: loss weights, the two optimizers, precision and XLA.

* :func:`normalize_loss_weights` -- the paper's 5:5:1:9:5 with the caller's changes.
* :func:`check_adv_warmup_steps` -- the adversarial warm-up length.
* :func:`prepare_optimizer` -- an optimizer (Adam 1e-3 by default), wrapped in a
  ``LossScaleOptimizer`` under the ``mixed_float16`` policy (Keras wraps only
  ``self.optimizer``, and SaGIM has two others).
* :func:`check_compile_kwargs` -- refuses ``optimizer``, ``loss`` and ``metrics``.
* :func:`check_estimator_for_xla` -- refuses an estimator XLA cannot compile.
"""

from __future__ import annotations

import math

import keras

from sagim_tf.losses import ALL_LOSS_NAMES, DEFAULT_LOSS_WEIGHTS
from sagim_tf.utils.errors import ConfigError


def normalize_loss_weights(loss_weights) -> dict:
    """Fill in the paper's 5:5:1:9:5 for missing terms; reject unknown or invalid ones.

    Args:
        loss_weights: dict or None. Weights over ``rec, content, color, cycle, adv`` and
            the extras ``photorealism``, ``locality`` and ``settings`` (0 unless given); 0 removes a term. Defaults to the
            paper's weights when ``None``.
    """
    weights = dict(DEFAULT_LOSS_WEIGHTS)
    if loss_weights is None:
        return weights
    if not isinstance(loss_weights, dict):
        raise ConfigError(
            f"loss_weights must be a dict like {DEFAULT_LOSS_WEIGHTS}, got {loss_weights!r}"
        )
    for key, value in loss_weights.items():
        if key not in weights:
            raise ConfigError(f"unknown loss weight {key!r}; known: {', '.join(ALL_LOSS_NAMES)}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"loss weight {key!r} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"loss weight {key!r} must be finite and >= 0, got {value}")
        weights[key] = value
    return weights


def check_adv_warmup_steps(steps) -> int:
    """``steps`` as an int, checked to be an integer >= 0 (a bool is refused)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"adv_warmup_steps must be an integer >= 0, got {steps!r}")
    return int(steps)


def check_compile_kwargs(kwargs: dict) -> dict:
    """``kwargs`` for ``keras.Model.compile`` without the arguments SaGIM does not use."""
    kwargs = dict(kwargs)
    for unused in ("optimizer", "loss", "metrics"):
        if kwargs.get(unused) is not None:
            raise ConfigError(
                f"SaGIM.compile: {unused!r} is not used; pass g_optimizer, d_optimizer "
                "and loss_weights"
            )
        kwargs.pop(unused, None)
    return kwargs


def prepare_optimizer(optimizer, name: str):
    """An optimizer for G or D, loss-scaled under the ``mixed_float16`` policy.

    Args:
        optimizer: a Keras optimizer, its name or its config, or None for Adam with
            learning rate 1e-3 (the paper's).
        name: str. The default optimizer's name (``"g_optimizer"`` or ``"d_optimizer"``).
    """
    if optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate=1e-3, name=name)
    else:
        optimizer = keras.optimizers.get(optimizer)
    policy = keras.mixed_precision.global_policy()
    if policy.name == "mixed_float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
    return optimizer


def estimator_supports_xla(estimator) -> bool:
    """False for an estimator that resizes with antialiasing (no XLA kernel for it)."""
    return not getattr(estimator, "antialias", False)


def check_estimator_for_xla(estimator) -> None:
    """Refuse, with the fix named, an estimator that XLA cannot compile.

    Raises:
        ConfigError: the estimator resizes with antialiasing.
    """
    if not estimator_supports_xla(estimator):
        raise ConfigError(
            f"SaGIM.compile(jit_compile=True): the estimator {estimator.name!r} resizes with "
            "antialias=True, which XLA cannot compile; build it for XLA where it is made: "
            "build_estimator(spec, jit_compile=True) (or IttiKochSaliency(antialias=False))"
        )
