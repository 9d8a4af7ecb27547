"""Loading ``.keras`` files that hold sagim_tf models, with clear errors."""

from __future__ import annotations

import os
import zipfile

from sagim_tf.errors import InputError


def register_all() -> None:
    """Import every module that registers a sagim_tf class with Keras' serialization."""
    import sagim_tf.trainer  # noqa: F401  (G, D, phi, layers come with it)
    from sagim_tf.estimators import available_estimators

    available_estimators()  # imports the built-in estimators' modules


def load_model(path, what: str = "model", compile: bool = False):
    """``keras.saving.load_model`` for SaGIM, G, D or estimator files.

    Checks that ``path`` exists, is a ``.keras`` archive, and loads; each failure is an
    :class:`~sagim_tf.errors.InputError` naming ``what`` and the path.
    """
    import keras

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{what} {path!r}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{what} {path!r}: is a directory, expected a .keras file (model.save)")
    if not path.endswith(".keras"):
        raise InputError(f"{what} {path!r}: expected a Keras '.keras' file (saved with model.save)")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{what} {path!r}: not a .keras archive (corrupt or truncated file?)")
    register_all()
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise InputError(f"{what} {path!r}: could not be loaded ({type(exc).__name__}: {exc})") from exc
