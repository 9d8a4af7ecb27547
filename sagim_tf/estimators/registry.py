"""Spec strings -> saliency estimators, shared by the CLI, configs and the Python API.

A spec is ``name`` or ``name:argument``, for example ``itti-koch`` or ``salgan:PATH``.
Modules register a factory with :func:`register_estimator`; :func:`build_estimator` parses
the spec and calls it. ``keras:PATH`` loads any user ``.keras`` model that maps images in
[0, 1] to maps in [0, 1].
"""

from __future__ import annotations

import os
from typing import Callable

from sagim_tf.utils.errors import ConfigError, InputError

_FACTORIES: dict[str, tuple[Callable, bool, str]] = {}


def register_estimator(name: str, factory: Callable, takes_argument: bool = False, help: str = ""):
    """Register ``factory(argument_or_None) -> keras.Model`` under ``name``."""
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


def build_estimator(spec: str):
    """Build the estimator a spec names; unknown names and missing arguments are errors."""
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
    return factory(arg) if takes_argument else factory()


def _load_keras_file(path: str):
    import keras

    if not os.path.isfile(path):
        raise InputError(f"keras estimator: no such file {path!r}")
    if not path.endswith(".keras"):
        raise InputError(f"keras estimator: expected a .keras file, got {path!r}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # zip, h5 and deserialisation errors come in many kinds
        raise InputError(f"keras estimator: cannot load {path!r} ({exc})") from exc
    model.trainable = False
    return model


register_estimator(
    "keras", _load_keras_file, takes_argument=True,
    help="any .keras model mapping (B,H,W,3) in [0,1] to (B,H,W,1) in [0,1]",
)

_BUILTIN_MODULES: tuple[str, ...] = (
    "sagim_tf.estimators.itti_koch",
    "sagim_tf.estimators.salgan",
    "sagim_tf.estimators.opencv_judges",
)
_loaded = False


def _load_builtin():
    """Import the modules that register the built-in estimators (once)."""
    global _loaded
    if _loaded:
        return
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True
