"""Load the manipulation network G from a ``.keras`` file for export or serving."""

from __future__ import annotations

import os

import keras

from sagim_tf.errors import InputError
from sagim_tf.saving import load_model


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
    _check_interface(generator, path)
    return generator


def _check_interface(model, path: str) -> None:
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
