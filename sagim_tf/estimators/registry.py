"""Spec strings -> saliency estimators, shared by the CLI, configs and the Python API.

A spec is ``name`` or ``name:argument``, for example ``itti-koch`` or ``salgan:PATH``.
Modules register a factory with :func:`register_estimator`; :func:`build_estimator` parses
the spec and calls it. ``keras:PATH`` loads any user ``.keras`` model that maps images in
[0, 1] to maps in [0, 1].

Where an estimator will run under XLA (``SaGIM.compile(jit_compile=True)``) is decided
here, when it is built: ``build_estimator(spec, jit_compile=True)`` asks a factory that
supports it for its XLA-compatible form (``itti-koch`` then resizes without antialiasing,
which XLA cannot compile).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import keras
import numpy as np

from sagim_tf.utils.checks import check_keras_file
from sagim_tf.utils.errors import ConfigError, InputError

_FACTORIES: dict[str, tuple[Callable, bool, str]] = {}


def register_estimator(name: str, factory: Callable, takes_argument: bool = False, help: str = ""):
    """Register ``factory(argument_or_None) -> keras.Model`` under ``name``.

    A factory that accepts a ``jit_compile`` keyword is given it by :func:`build_estimator`;
    the others are built the same way with or without XLA.
    """
    _FACTORIES[name] = (factory, takes_argument, help)
    return factory


def available_estimators() -> dict[str, str]:
    """Name -> one-line description of each registered estimator."""
    _load_builtin()
    return {k: v[2] for k, v in sorted(_FACTORIES.items())}


def parse_spec(spec: str) -> tuple[str, str | None]:
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"estimator spec must be a non-empty string, got {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    return name.strip().lower(), (arg if sep else None)


def build_estimator(spec: str, jit_compile: bool = False):
    """Build the estimator a spec names; unknown names and missing arguments are errors.

    Args:
        spec: str. ``name`` or ``name:argument``, e.g. ``"itti-koch"``, ``"salgan:PATH"``.
        jit_compile: bool. Build the form that compiles under XLA, for a model compiled
            with ``jit_compile=True``. Defaults to ``False``.
    """
    _load_builtin()
    name, arg = parse_spec(spec)
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise ConfigError(f"unknown estimator {name!r} in spec {spec!r}; known: {known}")
    factory, takes_argument, _ = _FACTORIES[name]
    if takes_argument and not arg:
        raise ConfigError(f"estimator {name!r} needs an argument: '{name}:PATH'")
    if not takes_argument and arg:
        raise ConfigError(f"estimator {name!r} takes no argument, got {spec!r}")
    args = (arg,) if takes_argument else ()
    if jit_compile and "jit_compile" in inspect.signature(factory).parameters:
        return factory(*args, jit_compile=True)
    return factory(*args)


def build_keras_estimator(path: str):
    """Factory for ``keras:PATH``: a user's frozen ``.keras`` estimator.

    The file passes the checks every ``.keras`` loader shares
    (:func:`~sagim_tf.utils.checks.check_keras_file`); ``sagim_tf.models.loading`` sits on
    a higher floor, so it is not used here.
    """
    path = check_keras_file(path, "keras estimator")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # zip, h5 and deserialisation errors come in many kinds
        raise InputError(
            f"keras estimator {path!r}: could not be loaded ({type(exc).__name__}: {exc})"
        ) from exc
    model.trainable = False
    _check_estimator_shape(model, path)
    return model


def _check_estimator_shape(model, path: str, probe: int = 64) -> None:
    """Run ``model`` once on a small black image; refuse it unless it maps (1, H, W, 3) to
    (1, H, W, 1). Fixed input sizes the model declares are used as given."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):  # a subclassed model declares no input shape
        shape = (None, None, None, 3)
    if isinstance(shape, list):
        raise InputError(f"keras estimator {path!r}: takes {len(shape)} inputs; expected one image")
    if len(shape) != 4 or shape[-1] not in (None, 3):
        raise InputError(
            f"keras estimator {path!r}: input shape {shape}; expected images (B, H, W, 3)"
        )
    height, width = (int(d) if d else probe for d in shape[1:3])
    try:
        out = model(np.zeros((1, height, width, 3), np.float32), training=False)
    except Exception as exc:  # a user's model can fail in any layer
        raise InputError(
            f"keras estimator {path!r}: fails on a (1, {height}, {width}, 3) image "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    got = tuple(int(d) for d in keras.ops.shape(out))
    if got != (1, height, width, 1):
        raise InputError(
            f"keras estimator {path!r}: maps a (1, {height}, {width}, 3) image to {got}; an "
            f"estimator must return one saliency channel of the image's size, "
            f"(1, {height}, {width}, 1)"
        )


register_estimator(
    "keras",
    build_keras_estimator,
    takes_argument=True,
    help="any .keras model mapping (B,H,W,3) in [0,1] to (B,H,W,1) in [0,1]",
)

_BUILTIN_MODULES: tuple[str, ...] = (
    "sagim_tf.estimators.itti_koch",
    "sagim_tf.estimators.salgan",
    "sagim_tf.estimators.opencv_judges",
)
_loaded = False


def _load_builtin():
    """Import the modules that register the built-in estimators (once).

    By name, at first use: each of them imports this module to register itself.
    """
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True
