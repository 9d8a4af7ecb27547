"""``sagim saliency``: writes a map and an overlay; bad input exits 2 with a clear message."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sagim_tf.cli import main
from sagim_tf.utils.io import save_image


@pytest.fixture()
def photo(tmp_path):
    img = data.chelsea()[::4, ::4] / 255.0  # 75 x 113, a real photograph, kept small
    path = tmp_path / "chelsea.png"
    save_image(path, img)
    return path, img


@pytest.mark.parametrize("spec", ["itti-koch", "spectral-residual"])
def test_writes_map_and_overlay(photo, tmp_path, spec, capsys):
    path, img = photo
    out = tmp_path / "maps" / "map.png"
    assert main(["saliency", str(path), "--estimator", spec, "--out", str(out)]) == 0
    sal = np.asarray(Image.open(out))
    overlay = np.asarray(Image.open(tmp_path / "maps" / "map_overlay.png"))
    assert sal.shape == img.shape[:2] and sal.dtype == np.uint8 and sal.max() > 128
    assert overlay.shape == img.shape
    assert "overlay" in capsys.readouterr().out


def test_explicit_overlay_path_and_default_estimator(photo, tmp_path):
    path, _ = photo
    over = tmp_path / "o.jpg"
    args = ["--out", str(tmp_path / "m.png"), "--overlay", str(over), "--alpha", "0.3"]
    assert main(["saliency", str(path), *args]) == 0
    assert over.is_file()


def test_missing_and_corrupt_files(tmp_path, capsys):
    assert main(["saliency", str(tmp_path / "absent.png"), "--out", str(tmp_path / "m.png")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    assert main(["saliency", str(bad), "--out", str(tmp_path / "m.png")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_bad_options(photo, tmp_path, capsys):
    path, _ = photo
    args = ["--estimator", "nope", "--out", str(tmp_path / "m.png")]
    assert main(["saliency", str(path), *args]) == 2
    assert "unknown estimator" in capsys.readouterr().err
    assert main(["saliency", str(path), "--out", str(tmp_path / "m.xyz")]) == 2
    assert "Pillow cannot write '.xyz' images" in capsys.readouterr().err
    assert main(["saliency", str(path), "--alpha", "2", "--out", str(tmp_path / "m.png")]) == 2
    assert "--alpha" in capsys.readouterr().err


def test_outputs_are_checked_before_any_work(photo, tmp_path, capsys, monkeypatch):
    path, _ = photo
    before = path.read_bytes()
    # the map on top of its own input: refused, the input kept byte for byte
    assert main(["saliency", str(path), "--out", str(path)]) == 2
    assert "is an input" in capsys.readouterr().err and path.read_bytes() == before
    # the overlay on top of the map
    out = tmp_path / "m.png"
    assert main(["saliency", str(path), "--out", str(out), "--overlay", str(out)]) == 2
    assert "--out and --overlay are the same file" in capsys.readouterr().err
    # a format Pillow reads but cannot write, found before the estimator runs
    assert main(["saliency", str(path), "--out", str(tmp_path / "m.psd")]) == 2
    assert "Pillow cannot write '.psd' images" in capsys.readouterr().err
    # a folder that cannot be written, and a "folder" that is a file
    monkeypatch.setattr("os.access", lambda *a, **k: False)
    assert main(["saliency", str(path), "--out", str(tmp_path / "ro" / "m.png")]) == 2
    assert "is not writable" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["saliency", str(path), "--out", str(path / "m.png")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["chelsea.png"]


def test_rotated_photo_and_pixel_budget(tmp_path, capsys):
    """The map is of the photo as displayed (EXIF orientation 8), and a budget applies."""
    exif = Image.Exif()
    exif[0x0112] = 8  # stored 30 wide x 20 high, displayed 20 x 30
    path = tmp_path / "turned.jpg"
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(path, exif=exif.tobytes())
    out = tmp_path / "m.png"
    assert main(["saliency", str(path), "--out", str(out)]) == 0
    with Image.open(out) as sal:
        assert sal.size == (20, 30)
    assert main(["saliency", str(path), "--out", str(out), "--max-pixels", "599"]) == 2
    assert "30x20 is 600 pixels (0.0 megapixels), above the limit of 599" in capsys.readouterr().err


def test_estimator_file_is_an_input(photo, tmp_path, capsys):
    path, _ = photo
    weights = tmp_path / "weights.png"  # an odd name, but it is read: never written over
    weights.write_bytes(b"not an image")
    assert (
        main(["saliency", str(path), "--estimator", f"keras:{weights}", "--out", str(weights)]) == 2
    )
    assert "is an input" in capsys.readouterr().err and weights.read_bytes() == b"not an image"
