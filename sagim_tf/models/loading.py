"""Loading ``.keras`` files that hold sagim_tf models, with clear errors: the one model loader.

* :func:`load_model` -- any sagim_tf ``.keras`` file (SaGIM, G, D, an estimator).
* :func:`load_generator` -- G alone, from a full SaGIM or a bare generator file, with its
  interface checked (export and serving use it).
"""

from __future__ import annotations

import os

import keras

import sagim_tf.models.sagim  # noqa: F401  (registers SaGIM; G, D, phi and layers come with it)
from sagim_tf.estimators import available_estimators
from sagim_tf.utils.checks import check_keras_file
from sagim_tf.utils.errors import InputError


def register_all() -> None:
    """Register every sagim_tf class with Keras' serialization (the built-in estimators')."""
    available_estimators()  # imports the built-in estimators' modules


def load_model(path, what: str = "model", compile: bool = False):
    """``keras.saving.load_model`` for SaGIM, G, D or estimator files.

    Checks that ``path`` exists, is a ``.keras`` archive (:func:`check_keras_file`), and
    loads; each failure is an :class:`~sagim_tf.utils.errors.InputError` naming ``what``
    and the path.

    Args:
        path: str or path-like. The ``.keras`` file.
        what: str. What it should hold, for messages. Defaults to ``"model"``.
        compile: bool. Restore the compile state (optimizers) too. Defaults to ``False``.
    """
    path = check_keras_file(path, what)
    register_all()
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise InputError(
            f"{what} {path!r}: could not be loaded ({type(exc).__name__}: {exc})"
        ) from exc


def load_generator(path) -> keras.Model:
    """Return G from ``path``, a ``.keras`` file holding a :class:`~sagim_tf.SaGIM` or a bare G.

    A full SaGIM file yields its ``.generator``; any other Keras model is accepted if it
    takes ``[image (B, H, W, 3), guidance (B, H, W, 1)]`` and returns (B, H, W, 3).

    Raises:
        InputError: the file is missing, not a ``.keras`` archive, corrupt, or holds a model
            that is not an image editor with G's interface.
    """
    path = os.fspath(path)
    model = load_model(path, "model")
    generator = getattr(model, "generator", model)
    check_generator_interface(generator, path)
    return generator


def check_generator_interface(model, path: str) -> None:
    """Refuse ``model`` (read from ``path``) unless it has G's interface: two inputs,
    image (B, H, W, 3) and guidance (B, H, W, 1), and one (B, H, W, 3) output; the check
    every loader of a G shares (InputError naming the path)."""
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or not inputs or len(inputs) != 2:
        raise InputError(
            f"{path}: holds {type(model).__name__}, not G; expected a model taking "
            "[image (B, H, W, 3), guidance (B, H, W, 1)]"
        )
    shapes = [tuple(t.shape) for t in inputs]
    if len(shapes[0]) != 4 or shapes[0][-1] != 3 or len(shapes[1]) != 4 or shapes[1][-1] != 1:
        raise InputError(
            f"{path}: model inputs have shapes {shapes}; expected (B, H, W, 3) and (B, H, W, 1)"
        )
    if outputs and (len(outputs) != 1 or tuple(outputs[0].shape)[-1] != 3):
        raise InputError(
            f"{path}: model outputs {[tuple(t.shape) for t in outputs]}; expected one (B, H, W, 3)"
        )
