"""Images as they arrive: a pixel budget read from the header, EXIF orientation, metadata
kept, 16-bit scaled by bit depth, multi-frame files (sagim_tf/utils/io.py; issue 15)."""

from __future__ import annotations

import logging
import os
import stat
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from sagim_tf.cli import main
from sagim_tf.utils import io
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import (
    MAX_PIXELS,
    atomic_write,
    check_array_pixels,
    image_metadata,
    load_image,
    load_map,
    max_pixels,
    remove_stale_staging,
    save_image,
    staging_prefix,
    write_text,
)

ORIENTATION = 0x0112
MAKE = 0x010F


def blank_png(path, width: int, height: int) -> None:
    """A valid greyscale PNG of zeros, a few hundred KB, built without holding its pixels.

    The zlib stream is one compressed MiB of zeros, repeated: each copy ends on a sync
    flush and refers only to itself, so the copies chain into one valid deflate stream.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    total = (width + 1) * height  # a filter byte, then the row
    block = 1 << 20

    def deflated(n: int) -> bytes:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        return comp.compress(bytes(n)) + comp.flush(zlib.Z_SYNC_FLUSH)

    body = deflated(block) * (total // block) + deflated(total % block)
    adler = (total % 65521) << 16 | 1  # adler32 of zeros: a = 1, b = n mod 65521
    stream = b"\x78\xda" + body + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream))
        f.write(chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    d = tmp_path_factory.mktemp("huge")
    paths = {}
    for side in (13000, 30000):
        paths[side] = d / f"blank{side}.png"
        blank_png(paths[side], side, side)
    return paths


def test_blank_png_is_a_real_png(tmp_path):
    path = tmp_path / "b.png"
    blank_png(path, 301, 7)
    with Image.open(path) as img:
        img.load()
        assert img.size == (301, 7) and img.getextrema() == (0, 0)


# ---------------------------------------------------------------------------- the budget
def test_huge_pngs_are_refused_from_their_header(huge):
    for side, path in huge.items():
        assert path.stat().st_size < 2_000_000  # small on disk, 169 and 900 MP decoded
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning leaks either
            for load in (load_image, load_map):
                with pytest.raises(InputError, match=f"{side}x{side} is .* above the limit"):
                    load(path)
    # above Pillow's own limit (2 x 89 MP) but within ours: the header is read, not refused
    assert image_metadata(huge[30000]) == {"exif": None, "icc_profile": None}
    assert Image.MAX_IMAGE_PIXELS not in (None, 0)  # Pillow's global limit is restored


def test_refusal_allocates_nothing(huge):
    """In a fresh process, both refusals keep the peak RSS near the import's."""
    code = (
        "import resource, sys\n"
        "from sagim_tf.utils.io import load_image, load_map\n"
        "from sagim_tf.utils.errors import InputError\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    for load in (load_image, load_map):\n"
        "        try:\n"
        "            load(path)\n"
        "        except InputError:\n"
        "            pass\n"
        "        else:\n"
        "            raise SystemExit('not refused')\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(huge[13000]), str(huge[30000])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    grown_mb = int(out.stdout.split()[-1])
    # decoding the smaller one alone would add 169 MB (greyscale) and 507 MB (RGB); the
    # 50 MB allow for Pillow's and zlib's buffers and the allocator's own growth
    assert grown_mb < 50, out.stdout


def test_a_huge_jpeg_header_is_refused_before_opencv_decodes(tmp_path, monkeypatch):
    """Complete 8-bit RGB JPEGs go to OpenCV's decoder; the budget is checked first."""
    path = tmp_path / "small.jpg"
    Image.new("RGB", (16, 8), (200, 100, 50)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, H, W
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    path.write_bytes(bytes(data))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded before the budget check")

    monkeypatch.setattr("cv2.imdecode", no_decode)
    with pytest.raises(InputError, match="20000x20000 is 400,000,000 pixels"):
        load_image(path, dtype=np.uint8)


def test_cli_refuses_huge_images_with_a_message(huge, tmp_path, capsys):
    out = tmp_path / "m.png"
    for side, path in huge.items():
        assert main(["saliency", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{side}x{side} is" in err and "--max-pixels" in err and "Traceback" not in err
        argv = ["edit", "--model", str(tmp_path / "g.keras"), "--image", str(path)]
        assert main([*argv, "--emphasize", "1,1,9,9", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{side}x{side} is" in err and "Traceback" not in err
    assert not out.exists()


def test_budget_setting(tmp_path, monkeypatch):
    path = save_image(tmp_path / "p.png", np.zeros((20, 30, 3), np.uint8))
    assert max_pixels() == MAX_PIXELS
    assert load_image(path, max_pixels=600).shape == (20, 30, 3)  # exactly the budget
    with pytest.raises(InputError, match="30x20 is 600 pixels .* limit of 599 pixels"):
        load_image(path, max_pixels=599)
    monkeypatch.setenv("SAGIM_MAX_PIXELS", "599")
    assert max_pixels() == 599 and max_pixels("1e3") == 1000
    with pytest.raises(InputError, match="SAGIM_MAX_PIXELS"):
        load_map(path)
    monkeypatch.setenv("SAGIM_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="SAGIM_MAX_PIXELS: expected a positive whole"):
        load_image(path)
    for bad in (0, -1, 2.5, "nan"):
        with pytest.raises(ConfigError, match="--max-pixels"):
            max_pixels(bad, "--max-pixels")


class _Shape:
    """Only a shape: a budget check that touched the pixels would fail."""

    def __init__(self, *shape):
        self.shape = shape


def test_arrays_get_the_budget_of_files_from_their_shape(monkeypatch):
    message = (
        "image: 30x20 is 600 pixels (0.0 megapixels), above the limit of 599 pixels; shrink "
        "it first, or raise the limit with max_pixels= (--max-pixels) or SAGIM_MAX_PIXELS "
        "(held as float32 RGB it takes 0.0 GB before any model runs)"
    )
    with pytest.raises(InputError) as err:
        check_array_pixels(np.zeros((20, 30, 3), np.uint8), limit=599)
    assert str(err.value) == message
    check_array_pixels(np.zeros((20, 30, 3), np.uint8), limit=600)  # exactly the budget
    check_array_pixels(np.zeros((20, 30)), limit=600)  # a map (H, W)
    with pytest.raises(InputError, match="guidance: 30x20 is 600 pixels"):
        check_array_pixels(np.zeros((20, 30)), "guidance", limit=599)
    with pytest.raises(InputError, match="30000x30000 is 900,000,000 pixels .* 10.1 GB"):
        check_array_pixels(_Shape(30000, 30000, 3))  # the default budget, nothing allocated
    with pytest.raises(InputError, match="a batch of 3 images of 30x20 is 1,800 pixels"):
        check_array_pixels(_Shape(3, 20, 30, 3), limit=1000)
    check_array_pixels(_Shape(5), limit=1)  # other ranks: left to the shape checks
    check_array_pixels(_Shape(None, 20, 30, 3), limit=1)  # symbolic sizes: nothing to count
    monkeypatch.setenv("SAGIM_MAX_PIXELS", "599")
    with pytest.raises(InputError, match="limit of 599 pixels"):
        check_array_pixels(np.zeros((20, 30, 3)))


# ---------------------------------------------------------------------------- writes
def test_atomic_writes_sync_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    path = tmp_path / "out" / "notes.txt"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        info = os.fstat(fd)
        synced.append((stat.S_ISDIR(info.st_mode), info.st_ino, path.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_text(path, "hello")
    assert path.read_text() == "hello"
    file_ino, dir_ino = path.stat().st_ino, path.parent.stat().st_ino
    # the data, under its temporary name (rename keeps the inode), then the folder's entry
    assert synced == [(False, file_ino, False), (True, dir_ino, True)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    synced.clear()
    save_image(tmp_path / "out" / "p.png", np.zeros((2, 3, 3), np.uint8))
    assert [d for d, _, _ in synced] == [False, True]


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    write_text(path, "old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_entries_of_dead_runs_are_removed(tmp_path):
    host, dead = io._host(), _dead_pid()
    assert staging_prefix("4") == f".tmp-4-p{os.getpid()}@{host}-"
    assert staging_prefix("4", "old") == f".old-4-p{os.getpid()}@{host}-"
    names = {
        f".tmp-1-p{dead}@{host}-abc": "removed",  # a killed export's version folder
        f".tmp-p{dead}@{host}-x.tflite": "removed",  # a killed atomic write
        f".old-2-p{dead}@{host}-def": "removed",
        f"{staging_prefix('3')}ghi": "kept",  # a live run's (this one)
        f".tmp-3-p{dead}@elsewhere-jkl": "kept",  # another machine's, recent
        ".tmp-1-legacy": "kept",  # no owner, recent
        ".tmp-1-ancient": "removed",  # no owner, older than STALE_STAGING_HOURS
        "1": "kept",
        ".hidden": "kept",
        "notes.tmp-1": "kept",
    }
    for name in names:
        if "." in name[1:]:
            (tmp_path / name).write_text("x")
        else:
            (tmp_path / name).mkdir()
            (tmp_path / name / "saved_model.pb").write_text("x")
    day_ago = os.stat(tmp_path).st_mtime - (io.STALE_STAGING_HOURS + 1) * 3600
    os.utime(tmp_path / ".tmp-1-ancient", (day_ago, day_ago))
    removed = remove_stale_staging(tmp_path)
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        n for n, fate in names.items() if fate == "removed"
    )
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, f in names.items() if f == "kept")
    assert remove_stale_staging(tmp_path / "missing") == []


# ---------------------------------------------------------------------------- orientation
def _oriented(path, pixels, orientation, **options):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "TestCam"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **options)
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_exif_orientation_is_applied_as_pillow_applies_it(tmp_path, ext):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 8, 3), np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.{ext}"
        options = {"quality": 100} if ext == "jpg" else {"lossless": True} if ext == "webp" else {}
        want = _oriented(path, pixels, orientation, **options)
        assert want.shape[:2] == ((8, 5) if orientation >= 5 else (5, 8))
        np.testing.assert_array_equal(load_image(path, dtype=np.uint8), want)
        grey = np.asarray(Image.fromarray(want).convert("L"), np.float32) / 255
        # Pillow's L conversion of the stored and of the turned pixels: the same numbers
        np.testing.assert_array_equal(load_map(path)[..., 0], grey)
        # a dataset whose annotations refer to the stored pixels reads them as stored
        with Image.open(path) as raw:
            as_stored = np.asarray(raw.convert("RGB"))
        np.testing.assert_array_equal(
            load_image(path, dtype=np.uint8, orientation=False), as_stored
        )


# ---------------------------------------------------------------------------- metadata
@pytest.mark.parametrize("src_ext", ["jpg", "png", "webp"])
@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_metadata_is_kept_with_orientation_reset(tmp_path, src_ext, ext):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "TestCam"
    src = tmp_path / f"in.{src_ext}"
    Image.new("RGB", (6, 4), (10, 20, 30)).save(src, exif=exif.tobytes(), icc_profile=icc)
    meta = image_metadata(src)
    assert meta["icc_profile"] == icc
    out = save_image(tmp_path / f"out.{ext}", load_image(src, dtype=np.uint8), **meta)
    with Image.open(out) as img:
        assert img.size == (4, 6)  # written upright, so...
        assert img.getexif()[ORIENTATION] == 1  # ...no viewer turns it again
        assert img.getexif()[MAKE] == "TestCam"
        assert img.info["icc_profile"] == icc


def test_tiff_gives_its_icc_profile_only(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "in.tif"
    Image.new("RGB", (6, 4)).save(src, icc_profile=icc)
    assert image_metadata(src) == {"exif": None, "icc_profile": icc}


def test_jpeg_without_metadata_keeps_the_fast_encoder(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (9, 11, 3), np.uint8)
    plain = save_image(tmp_path / "a.jpg", pixels, exif=None, icc_profile=None)
    with Image.open(plain) as img:
        assert "exif" not in img.info and "icc_profile" not in img.info


def test_metadata_of_a_file_without_any(tmp_path):
    path = save_image(tmp_path / "p.png", np.zeros((3, 4, 3), np.uint8))
    assert image_metadata(path) == {"exif": None, "icc_profile": None}
    # a format that cannot carry them is written without
    bmp = save_image(tmp_path / "p.bmp", np.zeros((3, 4, 3), np.uint8), exif=b"Exif\0\0")
    with Image.open(bmp) as img:
        assert img.size == (4, 3)


# ---------------------------------------------------------------------------- 16 bit
@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_images_are_scaled_by_their_bit_depth(tmp_path, ext):
    faint = np.full((4, 6), 328, np.uint16)  # 328 / 65535 = 0.005
    faint[0, 0] = 100
    path = tmp_path / f"faint.{ext}"
    Image.fromarray(faint).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # read as 16-bit, the case under test
    grid = load_map(path)[..., 0]
    # float32 division: 328 / 65535 is exact to float32's 6e-8 relative rounding
    np.testing.assert_allclose(grid, faint / np.float32(65535), rtol=1e-6)
    dark = np.full((4, 6), 19661, np.uint16)  # 30% grey in 16 bits
    Image.fromarray(dark).save(path)
    photo = load_image(path, dtype=np.uint8)
    assert (photo == 77).all()  # 0.3 * 255 = 76.5, rounded half up; not brightened to 255


# ---------------------------------------------------------------------------- frames
def test_multi_frame_gif_says_it_uses_the_first(tmp_path, caplog):
    frames = [Image.new("RGB", (5, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="sagim_tf.utils.io"):
        rgb = load_image(path, dtype=np.uint8)
    assert "has several frames; using the first" in caplog.text
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    caplog.clear()
    single = tmp_path / "still.gif"
    frames[0].save(single)
    with caplog.at_level(logging.WARNING, logger="sagim_tf.utils.io"):
        load_image(single)
    assert "several frames" not in caplog.text
