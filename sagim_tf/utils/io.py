"""Reading and writing images and maps: RGB float32 in [0, 1], maps (H, W, 1) in [0, 1].

Writes are atomic (temporary file, then rename), so an interrupted run never leaves a
half-written file and never destroys one that was already there.
"""

from __future__ import annotations

import json
import os
import tempfile

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from sagim_tf.utils.errors import ConfigError, InputError


def _open(path, load: bool = True):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected an image file")
    try:
        img = Image.open(path)
        if load:
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    return img


#: OpenCV's flags for an 8-bit RGB decode that ignores EXIF orientation, as Pillow does.
_CV2_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _decode_jpeg(path, img: Image.Image) -> np.ndarray | None:
    """A baseline 8-bit RGB JPEG's pixels by OpenCV, or None to let Pillow decode it.

    The same libjpeg-turbo decode as Pillow's (tests/test_editing.py checks they agree)
    straight into an array, about twice as fast as Pillow's decode plus its copy out
    (``np.asarray``) on a 12-megapixel photo. Only a complete file (ending in the EOI
    marker) of Pillow's mode RGB takes this path, so that a truncated or unusual file
    fails, or is read, exactly as Pillow does.
    """
    if _CV2_RGB is None or img.format != "JPEG" or img.mode != "RGB":
        return None
    if getattr(img, "bits", 8) != 8 or getattr(img, "layers", 3) != 3:
        return None
    data = np.fromfile(path, np.uint8)
    if len(data) < 4 or data[-2] != 0xFF or data[-1] != 0xD9:
        return None
    rgb = cv2.imdecode(data, _CV2_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if rgb is None or rgb.shape != (img.height, img.width, 3) or rgb.dtype != np.uint8:
        return None
    return rgb


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "I;16" or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() if arr.max() > 0 else 1.0
        img = Image.fromarray((arr / peak * 255).astype(np.uint8))
    return img.convert("RGB")


def load_image(path, dtype=np.float32) -> np.ndarray:
    """Read an image file as RGB (H, W, 3) (greyscale and RGBA handled).

    Args:
        path: the file.
        dtype: ``np.float32`` (the default) for values in [0, 1], ``k / 255``; or
            ``np.uint8`` for the decoded 8-bit values, which
            :func:`~sagim_tf.inference.editor.edit_image` and :func:`save_image` take as
            they are (no float copy of a large photo).
    """
    if np.dtype(dtype) not in (np.float32, np.uint8):
        raise ConfigError(f"load_image: dtype must be float32 or uint8, got {dtype!r}")
    img = _open(path, load=False)
    try:
        rgb = _decode_jpeg(os.fspath(path), img)
        if rgb is None:
            try:
                img.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"{os.fspath(path)}: not a readable image ({exc})") from exc
            rgb = np.asarray(to_rgb(img))
    finally:
        img.close()
    if np.dtype(dtype) == np.uint8:
        return rgb
    # one conversion in place: Pillow's own float conversion is several times slower on
    # a 12-megapixel photo; the values are the same (k / 255 in float32)
    image = rgb.astype(np.float32)
    image /= np.float32(255.0)
    return image


def load_map(path) -> np.ndarray:
    """Read a saliency/guidance map image as float32 (H, W, 1) in [0, 1]."""
    img = _open(path)
    if img.mode not in ("L", "I", "I;16", "F"):
        img = to_rgb(img).convert("L")
    arr = np.asarray(img, dtype=np.float32)
    if img.mode == "L":
        arr = arr / 255.0
    elif arr.max() > 1.0:
        arr = arr / arr.max()
    return arr[..., None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8, rounding half up: ``(clip(x, 0, 1) * 255 + 0.5)`` truncated."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    scaled = np.clip(x, 0.0, 1.0)  # a new array, so the rest is done in place
    scaled *= np.float32(255.0)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)


def make_readable(path) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual mode (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path, write_fn, suffix: str = "") -> str:
    """Call ``write_fn(tmp_path)`` then rename the temporary file onto ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=".tmp-", suffix=suffix or os.path.splitext(path)[1]
    )
    os.close(fd)
    try:
        write_fn(tmp)
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_text(path, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the new one."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def write_json(path, obj, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Write ``obj`` as JSON to ``path`` atomically, with a final newline.

    NaN and infinities are refused (``allow_nan=False``), so every file we write is strict
    JSON that other tools can read; the text is built before the file is touched, so an
    unserialisable object leaves any existing file as it was.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    return write_text(path, text)


def save_image(path, x: np.ndarray, quality: int = 95) -> str:
    """Write an RGB (H, W, 3) or map (H, W[, 1]) array to ``path`` atomically.

    Float values in [0, 1] are rounded by :func:`to_uint8`; a uint8 array is written as
    it is. An RGB JPEG is encoded by OpenCV's libjpeg-turbo, with the settings Pillow
    uses (the same bytes, checked by tests/test_editing.py, in half the time on a
    12-megapixel photo); everything else by Pillow.
    """
    x = np.asarray(x)
    pixels = x if x.dtype == np.uint8 else to_uint8(x)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    fmt = Image.registered_extensions().get(os.path.splitext(os.fspath(path))[1].lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image extension (use .png or .jpg)")
    if fmt == "JPEG" and pixels.ndim == 3 and pixels.shape[-1] == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if ok:
            return atomic_write(path, lambda tmp: data.tofile(tmp))
    img = Image.fromarray(pixels)
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **kwargs))
