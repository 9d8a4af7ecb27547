"""Checks on images and saliency maps at the package's public boundaries.

Images are float32 RGB in [0, 1], shaped (H, W, 3) or (B, H, W, 3). Saliency and guiding
maps are in [0, 1], shaped (H, W, 1) or (B, H, W, 1) with the same H and W as the image.
Every check raises :class:`~sagim_tf.utils.errors.InputError` naming what is wrong.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from sagim_tf.utils.errors import ConfigError, InputError


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"{name}: cannot be read as an array ({exc})") from exc
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif not np.issubdtype(arr.dtype, np.floating):
        if np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
            arr = arr.astype(np.float32)
        else:
            raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _check_values(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"{name}: contains {bad} NaN or infinite value(s)")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name}: values must lie in [0, 1], found range [{lo:.4g}, {hi:.4g}]")


def check_image(x, name: str = "image") -> np.ndarray:
    """Return ``x`` as float32, checked to be (H, W, 3) or (B, H, W, 3) in [0, 1].

    uint8 input is scaled by 1/255 first.
    """
    arr = _as_float_array(x, name)
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise InputError(
            f"{name}: expected shape (H, W, 3) or (B, H, W, 3) RGB, got {tuple(arr.shape)}"
        )
    _check_values(arr, name)
    return arr


def check_map(x, name: str = "guidance", like: np.ndarray | None = None) -> np.ndarray:
    """Return ``x`` as float32, checked to be (H, W, 1) or (B, H, W, 1) in [0, 1].

    A 2-D (H, W) map gets its channel axis added. With ``like`` (an image array), the map
    must have the same rank, batch and spatial size.
    """
    arr = _as_float_array(x, name)
    if like is not None and arr.ndim == like.ndim - 1 and arr.shape == like.shape[:-1]:
        arr = arr[..., None]
    elif arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim not in (3, 4) or arr.shape[-1] != 1:
        raise InputError(
            f"{name}: expected shape (H, W, 1) or (B, H, W, 1), got {tuple(arr.shape)}"
        )
    if like is not None and arr.shape[:-1] != like.shape[:-1]:
        raise InputError(
            f"{name}: shape {tuple(arr.shape)} does not match the image's "
            f"{tuple(like.shape)} (batch and spatial size must agree)"
        )
    _check_values(arr, name)
    return arr


def check_static_pair(image_shape, guidance_shape) -> None:
    """Check symbolic shapes (entries may be None) of an image batch and its guidance."""
    image_shape = tuple(image_shape)
    guidance_shape = tuple(guidance_shape)
    if len(image_shape) != 4 or image_shape[-1] != 3:
        raise InputError(f"image: expected shape (B, H, W, 3), got {image_shape}")
    if len(guidance_shape) != 4 or guidance_shape[-1] != 1:
        raise InputError(f"guidance: expected shape (B, H, W, 1), got {guidance_shape}")
    for axis, label in ((1, "height"), (2, "width")):
        a, b = image_shape[axis], guidance_shape[axis]
        if a is not None and b is not None and a != b:
            raise InputError(
                f"guidance: {label} {b} does not match the image's {a} "
                f"(image {image_shape}, guidance {guidance_shape})"
            )


def check_keras_file(path, what: str = "model") -> str:
    """Return ``path`` as a string, checked to be a readable ``.keras`` archive.

    The checks every loader of ``.keras`` files shares (models and estimators alike); each
    failure is an :class:`~sagim_tf.utils.errors.InputError` naming ``what`` and the path.

    Args:
        path: str or path-like. The file to check.
        what: str. What the file should hold, for the message (``"model"``,
            ``"keras estimator"``, ...). Defaults to ``"model"``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{what} {path!r}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{what} {path!r}: is a directory, expected a .keras file (model.save)")
    if not path.endswith(".keras"):
        raise InputError(f"{what} {path!r}: expected a Keras '.keras' file (saved with model.save)")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{what} {path!r}: not a .keras archive (corrupt or truncated file?)")
    return path


def parse_size(value, what: str = "size", minimum: int = 1) -> tuple[int, int] | None:
    """``"256x192"`` or ``(256, 192)`` -> ``(256, 192)`` (width, height); None stays None.

    Anything else, or a side below ``minimum``, is a :class:`ConfigError` naming ``what``.
    """
    if value is None:
        return None
    try:
        if isinstance(value, str):
            w, h = (int(v) for v in value.lower().split("x"))
        else:
            w, h = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what}: expected WIDTHxHEIGHT or two integers W H, e.g. 256x192, got {value!r}"
        ) from None
    if w < minimum or h < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ConfigError(f"{what}: width and height must be {bound}, got {w}x{h}")
    return w, h


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (links followed; either may not exist)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(path, what: str, inputs=(), image: bool = False) -> str:
    """``path`` as a string, checked before any work to be a safe place to write.

    It must not be one of the ``inputs`` (never overwrite what the command reads), nor a
    folder; its folder must exist (or be creatable) and be writable; with ``image``, its
    extension must name a format Pillow can *write* (``.psd`` reads but does not write).
    Each failure is an :class:`~sagim_tf.utils.errors.InputError` naming ``what``.

    Args:
        path: str or path-like. The output path.
        what: str. The option or output it is, for messages (``"--out"``).
        inputs: paths the command reads.
        image: bool. Whether an image is written there. Defaults to False.
    """
    path = os.fspath(path)
    for source in inputs:
        if source is not None and same_file(path, source):
            raise InputError(f"{what} {path!r} is an input ({source!r}); refusing to overwrite it")
    if os.path.isdir(path):
        raise InputError(f"{what} {path!r} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f"{what} {path!r}: {existing!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path!r}: folder {existing!r} is not writable")
    if image:
        from PIL import Image  # lazy: only the image outputs need Pillow's format table

        Image.init()
        ext = os.path.splitext(path)[1].lower()
        fmt = Image.registered_extensions().get(ext)
        if fmt is None or fmt not in Image.SAVE:
            raise InputError(
                f"{what} {path!r}: Pillow cannot write {ext or 'files without an extension'!r} "
                "images; use .png or .jpg"
            )
    return path


def check_distinct_outputs(outputs) -> None:
    """Refuse two outputs that name one file: ``outputs`` is a sequence of (path, what)."""
    outputs = [(os.fspath(p), w) for p, w in outputs if p is not None]
    for i, (a, wa) in enumerate(outputs):
        for b, wb in outputs[i + 1 :]:
            if same_file(a, b):
                raise InputError(f"{wa} and {wb} are the same file {a!r}")
