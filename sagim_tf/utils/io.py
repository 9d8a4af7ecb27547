"""Reading and writing images and maps: RGB float32 in [0, 1], maps (H, W, 1) in [0, 1].

Reads take photos as cameras write them: the EXIF orientation is applied (pixels, boxes
and maps refer to the photo as displayed), 16-bit images are scaled by their bit depth,
a multi-frame GIF or TIFF logs that its first frame is used, and an image of more than
:func:`max_pixels` pixels is refused from its header, before its pixels are decoded.
:func:`image_metadata` gives the EXIF (orientation reset) and ICC profile that
:func:`save_image` can write back.

Writes are atomic (temporary file, synced to disk, then renamed; the folder is synced
after the rename), so an interrupted run or a power loss never leaves a half-written or
empty file and never destroys one that was already there. Temporary names say which
process made them (``.tmp-p<pid>@<host>-*``): :func:`remove_stale_staging` removes those
that a killed run left behind. In-memory images get the same pixel budget as files
(:func:`check_array_pixels`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from sagim_tf.utils.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

#: The default pixel budget of a decoded image (width x height): 100 megapixels, 300 MB
#: as 8-bit RGB, 1.2 GB as float32. ``SAGIM_MAX_PIXELS`` or a ``max_pixels`` argument
#: (``sagim edit/saliency --max-pixels``) changes it.
MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "SAGIM_MAX_PIXELS"

#: EXIF tag numbers.
_ORIENTATION = 0x0112

# Pillow's own bomb check is one global (Image.MAX_IMAGE_PIXELS); it is lifted, under this
# lock, only to read the header of an image above Pillow's limit that our budget allows.
_PIL_LIMIT_LOCK = threading.Lock()


def max_pixels(value=None, what: str = "max_pixels") -> int:
    """The pixel budget: ``value`` if given, else ``$SAGIM_MAX_PIXELS``, else MAX_PIXELS.

    A budget must be a positive integer (``1e8`` and ``100_000_000`` are read too);
    anything else is a :class:`ConfigError` naming ``what`` (or the variable).
    """
    if value is None:
        value = os.environ.get(MAX_PIXELS_ENV)
        what = MAX_PIXELS_ENV
        if value is None or value == "":
            return MAX_PIXELS
    try:
        number = float(str(value).replace("_", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 1 and number == int(number)):
        raise ConfigError(f"{what}: expected a positive whole number of pixels, got {value!r}")
    return int(number)


def _header(path) -> Image.Image:
    """``Image.open`` (the header only), without Pillow's own decompression-bomb limit.

    Our budget (:func:`check_pixels`) is the one that applies: Pillow's warning is
    silenced and its error, for more than twice its limit, leads to a second open with
    the limit lifted, so that the size reaches our check and our message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def _budget_message(name, width: int, height: int, limit: int, batch: int = 1, hint=None) -> str:
    """The one refusal text of the pixel budget, for a file (``name`` its path) or an array."""
    pixels = int(batch) * int(width) * int(height)
    size = f"{width}x{height}" if batch == 1 else f"a batch of {batch} images of {width}x{height}"
    how = "decoded" if hint is None else "held"
    return (
        f"{name}: {size} is {pixels:,} pixels ({pixels / 1e6:.1f} megapixels), above the limit "
        f"of {limit:,} pixels; shrink it first, or raise the limit with "
        f"{hint or '--max-pixels'} or {MAX_PIXELS_ENV} "
        f"({how} as float32 RGB it takes {pixels * 12 / 2**30:.1f} GB before any model runs)"
    )


def check_pixels(path, width: int, height: int, limit=None) -> None:
    """Refuse an image of ``width`` x ``height`` above the pixel budget (``InputError``)."""
    limit = max_pixels(limit)
    if int(width) * int(height) > limit:
        raise InputError(_budget_message(os.fspath(path), width, height, limit))


def check_array_pixels(array, what: str = "image", limit=None) -> None:
    """Refuse an in-memory image, map or batch above the pixel budget, from its shape only.

    The budget of files (:func:`max_pixels`: ``limit``, else ``$SAGIM_MAX_PIXELS``, else
    :data:`MAX_PIXELS`) applied where arrays enter the Python API, before any copy or
    model run: (H, W) and (H, W, C) count H x W pixels, (B, H, W, C) counts B x H x W.
    Only the shape is read (an array, a tensor or anything with ``.shape``); other ranks
    are left to the shape checks that follow.

    Args:
        array: the image, map or batch.
        what: str. Its name in the message (``"image"``, ``"guidance"``).
        limit: int or None. The budget; None: :func:`max_pixels`'s default.

    Raises:
        InputError: more pixels than the budget.
        ConfigError: an invalid ``limit`` or ``$SAGIM_MAX_PIXELS``.
    """
    shape = getattr(array, "shape", None)
    if shape is None:
        shape = np.shape(array)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):  # unknown (symbolic) sizes: nothing to count yet
        return
    if len(shape) < 2:
        return
    batch = math.prod(shape[:-3]) if len(shape) > 3 else 1
    height, width = shape[-3:-1] if len(shape) > 2 else shape
    limit = max_pixels(limit)
    if batch * height * width > limit:
        hint = "max_pixels= (--max-pixels)"
        raise InputError(_budget_message(what, width, height, limit, batch=batch, hint=hint))


def _open(path, load: bool = True, max_pixels=None):
    """The image at ``path``, its size checked against the budget before any decode."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected an image file")
    try:
        img = _header(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    try:
        check_pixels(path, img.width, img.height, max_pixels)
        try:
            if getattr(img, "is_animated", False):
                logger.warning("%s: has several frames; using the first", path)
            if load:
                img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{path}: not a readable image ({exc})") from exc
    except BaseException:
        img.close()
        raise
    return img


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: the pixels are still the photo
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> as displayed, for an EXIF orientation (``ImageOps.exif_transpose``)."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = np.rot90(arr, 2).swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    else:
        return arr
    return np.ascontiguousarray(arr)


def image_metadata(path) -> dict:
    """The EXIF (orientation reset to 1, as the pixels are read upright) and ICC profile.

    Returns ``{"exif": bytes or None, "icc_profile": bytes or None}``, for
    :func:`save_image`; reads the header only. A TIFF gives its ICC profile only (its
    tags describe its own layout).
    """
    img = _open(path, load=False, max_pixels=2**62)  # the header only: no budget needed
    try:
        icc = img.info.get("icc_profile") or None
        exif = None
        try:
            # a PNG without an eXIf chunk before its pixels: Pillow would decode them all
            # to look for one after (Pillow writes it before)
            no_exif = img.format == "PNG" and "exif" not in img.info
            # a TIFF's "EXIF" is its own image directory (its size, strips, ...), not a
            # camera's record to copy into another file
            no_exif = no_exif or img.format == "TIFF"
            tags = Image.Exif() if no_exif else img.getexif()
            if len(tags):
                if _ORIENTATION in tags:
                    tags[_ORIENTATION] = 1
                exif = tags.tobytes()
        except Exception:  # a damaged EXIF block is left behind, the edit is still written
            logger.warning("%s: its EXIF block cannot be read; the output has none", path)
    finally:
        img.close()
    return {"exif": exif, "icc_profile": icc}


#: OpenCV's flags for an 8-bit RGB decode that ignores EXIF orientation, as Pillow's does:
#: the orientation is applied after either decode (:func:`apply_orientation`).
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


def _bit_depth_peak(img: Image.Image) -> float | None:
    """The value of white for a high-bit-depth greyscale mode (``I;16*``, ``I``), else None.

    16-bit PNG and TIFF open as ``I;16`` (or ``I`` in older Pillow): white is 65535. A
    TIFF states its bits per sample (32-bit integer TIFFs: 2**32 - 1).
    """
    if img.mode.startswith("I;16"):
        return 65535.0
    if img.mode == "I":
        bits = getattr(img, "tag_v2", {}).get(258, (16,)) if hasattr(img, "tag_v2") else (16,)
        bits = bits[0] if isinstance(bits, tuple) and bits else bits
        return float(2 ** int(bits) - 1) if isinstance(bits, int) and bits > 8 else 65535.0
    return None


def _as_unit_float(img: Image.Image) -> np.ndarray:
    """A greyscale image's values in [0, 1] (H, W) float32: L / 255, 16-bit / 65535, F clipped."""
    arr = np.asarray(img, dtype=np.float32)
    peak = _bit_depth_peak(img)
    if img.mode == "F":
        peak = 1.0  # float images already mean [0, 1]; values outside are clipped
    elif peak is None:
        peak = 255.0
    arr = arr / np.float32(peak)
    return np.clip(arr, 0.0, 1.0, out=arr)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white.

    16-bit greyscale (``I;16``, ``I``) is scaled by its bit depth (65535 is white), not by
    the image's own maximum, so a dark 16-bit photo stays dark.
    """
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        grey = _as_unit_float(img)
        grey *= np.float32(255.0)
        grey += np.float32(0.5)  # rounded as to_uint8 rounds
        img = Image.fromarray(grey.astype(np.uint8), "L")
    return img.convert("RGB")


def load_image(path, dtype=np.float32, max_pixels=None, orientation: bool = True) -> np.ndarray:
    """Read an image file as RGB (H, W, 3) as displayed (greyscale, RGBA, 16-bit handled).

    The EXIF orientation is applied (a portrait phone photo comes out portrait); an image
    above the pixel budget is refused from its header, before its pixels are decoded.

    Args:
        path: the file.
        dtype: ``np.float32`` (the default) for values in [0, 1], ``k / 255``; or
            ``np.uint8`` for the decoded 8-bit values, which
            :func:`~sagim_tf.inference.editor.edit_image` and :func:`save_image` take as
            they are (no float copy of a large photo).
        max_pixels: the most pixels (width x height) accepted; None: :func:`max_pixels`'s
            default (``$SAGIM_MAX_PIXELS`` or 100 megapixels).
        orientation: bool. Apply the EXIF orientation (True, the default: as displayed);
            False reads the pixels as stored, for datasets whose annotations refer to
            them (COCO's masks are drawn on the stored width and height).

    Raises:
        InputError: a missing, unreadable or truncated file, or one above the budget.
    """
    if np.dtype(dtype) not in (np.float32, np.uint8):
        raise ConfigError(f"load_image: dtype must be float32 or uint8, got {dtype!r}")
    apply_exif = orientation
    img = _open(path, load=False, max_pixels=max_pixels)
    try:
        rgb = _decode_jpeg(os.fspath(path), img)
        if rgb is None:
            try:
                img.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"{os.fspath(path)}: not a readable image ({exc})") from exc
            rgb = np.asarray(to_rgb(img))
        orientation = _orientation(img)  # after the decode: a PNG's may follow its pixels
    finally:
        img.close()
    if apply_exif:
        rgb = apply_orientation(rgb, orientation)
    if np.dtype(dtype) == np.uint8:
        return rgb
    # one conversion in place: Pillow's own float conversion is several times slower on
    # a 12-megapixel photo; the values are the same (k / 255 in float32)
    image = rgb.astype(np.float32)
    image /= np.float32(255.0)
    return image


def load_map(path, max_pixels=None) -> np.ndarray:
    """Read a saliency/guidance map image as float32 (H, W, 1) in [0, 1], as displayed.

    8-bit values are read as ``k / 255`` and 16-bit ones as ``k / 65535`` (the bit depth,
    never the map's own maximum: a map of 0.005 everywhere stays 0.005); colour images are
    made greyscale; the EXIF orientation and the pixel budget apply as in
    :func:`load_image`.
    """
    img = _open(path, max_pixels=max_pixels)
    try:
        orientation = _orientation(img)
        if not (img.mode in ("L", "F") or img.mode.startswith("I")):
            img = to_rgb(img).convert("L")
        arr = _as_unit_float(img)
    finally:
        img.close()
    return apply_orientation(arr, orientation)[..., None]


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


def fsync_file(path) -> None:
    """Flush a written file's data to disk (``os.fsync``), so that a rename of it that
    survives a power loss never publishes an empty or partial file."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot
    be opened or synced (Windows, some network filesystems)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path) -> None:
    """:func:`fsync_file` every file under ``path`` and :func:`fsync_dir` every folder."""
    for root, _, files in os.walk(os.fspath(path)):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_dir(root)


def publish_file(tmp, path) -> str:
    """Publish a written temporary file as ``path``: the usual mode (0644 under umask 022),
    its data synced, renamed over ``path`` in one step, the folder synced."""
    path = os.fspath(path)
    make_readable(tmp)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return path


# ------------------------------------------------------------- staging (temporary) names
#: Hidden staging entries older than this are taken as left by a dead run, whoever made
#: them (a name without its maker's pid, another machine's, or a reused pid).
STALE_STAGING_HOURS = 24.0

_STAGING_KINDS = ("tmp", "old")
_STAGING_OWNER = re.compile(r"^\.(?:tmp|old)-(?:[^@/]*?-)?p(\d+)@([A-Za-z0-9]*)-")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def staging_prefix(tag: str = "", kind: str = "tmp") -> str:
    """The start of a hidden staging name made by this process: ``.<kind>-[<tag>-]p<pid>@<host>-``.

    ``kind`` is ``"tmp"`` (being written) or ``"old"`` (moved aside while replaced). A
    later run reads the pid and host back (:func:`is_stale_staging`).
    """
    if kind not in _STAGING_KINDS:
        raise ValueError(f"staging kind must be one of {_STAGING_KINDS}, got {kind!r}")
    return f".{kind}-{tag + '-' if tag else ''}p{os.getpid()}@{_host()}-"


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def is_stale_staging(path, max_age_hours: float = STALE_STAGING_HOURS) -> bool:
    """Whether ``path`` is a hidden staging entry (``.tmp-*``, ``.old-*``) of a dead run.

    Dead means: made on this machine by a process that no longer exists, or (whoever made
    it) not modified for ``max_age_hours``. A live process's entry is never stale before
    that age.
    """
    name = os.path.basename(os.fspath(path))
    if not name.startswith(tuple(f".{kind}-" for kind in _STAGING_KINDS)):
        return False
    owner = _STAGING_OWNER.match(name)
    if owner and owner.group(2) == _host() and not _pid_alive(int(owner.group(1))):
        return True
    try:
        age = time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return False
    return age > max_age_hours * 3600


def remove_stale_staging(directory, max_age_hours: float = STALE_STAGING_HOURS) -> list[str]:
    """Remove the hidden staging files and folders of dead runs in ``directory``.

    A killed ``sagim export`` (or any killed atomic write) leaves its ``.tmp-*`` entry
    behind; the next run calls this on the folders it writes to. Entries of live
    processes are kept (:func:`is_stale_staging`). Returns the removed paths.
    """
    directory = os.fspath(directory)
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in names:
        path = os.path.join(directory, name)
        if not is_stale_staging(path, max_age_hours):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except FileNotFoundError:  # another run removed it first
            continue
        except OSError as exc:
            logger.warning("cannot remove %s, left by an interrupted run: %s", path, exc)
            continue
        logger.info("removed %s, left by an interrupted run", path)
        removed.append(path)
    return removed


def atomic_write(path, write_fn, suffix: str = "") -> str:
    """Call ``write_fn(tmp_path)``, then publish the temporary file as ``path``.

    The temporary file is hidden beside ``path`` (:func:`staging_prefix`); it gets the
    usual mode, is synced to disk and renamed onto ``path`` (:func:`publish_file`), so
    readers see the old file or the whole new one, even after a power loss.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=staging_prefix(), suffix=suffix or os.path.splitext(path)[1]
    )
    os.close(fd)
    try:
        write_fn(tmp)
        publish_file(tmp, path)
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


#: Formats whose Pillow writer carries EXIF and an ICC profile (``exif=``, ``icc_profile=``).
METADATA_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")


def save_image(
    path, x: np.ndarray, quality: int = 95, exif: bytes | None = None, icc_profile=None
) -> str:
    """Write an RGB (H, W, 3) or map (H, W[, 1]) array to ``path`` atomically.

    Float values in [0, 1] are rounded by :func:`to_uint8`; a uint8 array is written as
    it is. An RGB JPEG without metadata is encoded by OpenCV's libjpeg-turbo, with the
    settings Pillow uses (the same bytes, checked by tests/test_editing.py, in half the
    time on a 12-megapixel photo); everything else by Pillow.

    Args:
        exif, icc_profile: bytes (e.g. from :func:`image_metadata`) written into formats
            that carry them (:data:`METADATA_FORMATS`); other formats are written without.
    """
    x = np.asarray(x)
    pixels = x if x.dtype == np.uint8 else to_uint8(x)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    fmt = Image.registered_extensions().get(os.path.splitext(os.fspath(path))[1].lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image extension (use .png or .jpg)")
    meta = {}
    if fmt in METADATA_FORMATS:
        meta = {k: v for k, v in (("exif", exif), ("icc_profile", icc_profile)) if v}
    elif exif or icc_profile:
        logger.info("%s: %s files do not keep EXIF/ICC metadata; written without", path, fmt)
    if fmt == "JPEG" and pixels.ndim == 3 and pixels.shape[-1] == 3 and not meta:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if ok:
            return atomic_write(path, lambda tmp: data.tofile(tmp))
    img = Image.fromarray(pixels)
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    kwargs.update(meta)
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **kwargs))
