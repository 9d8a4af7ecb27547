"""The synthetic COCO-format generator: pycocotools reads it, it is self-consistent and seeded."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from sagim_tf.cli import main
from sagim_tf.data import generate_synthetic_coco
from sagim_tf.utils.io import load_image
from tests.sam_helpers import files_bytes


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    ann = generate_synthetic_coco(str(root), 16, seed=11, size=(80, 60))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann)
    return root, ann, coco


def test_pycocotools_reads_everything(synth):
    root, ann, coco = synth
    assert len(coco.imgs) == 16
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {
        "disc",
        "box",
        "triangle",
        "star",
        "blob",
    }
    kinds = set()
    for image_id, info in coco.imgs.items():
        assert (info["width"], info["height"]) == (80, 60)
        anns = coco.imgToAnns[image_id]
        assert 1 <= len(anns) <= 6
        with Image.open(os.path.join(root, "images", info["file_name"])) as im:
            assert im.format == "JPEG" and im.size == (80, 60)
        for a in anns:
            kinds.add("polygon" if isinstance(a["segmentation"], list) else "rle")
            m = coco.annToMask(a)
            assert m.sum() == a["area"] > 0
            ys, xs = np.nonzero(m)
            x, y, w, h = a["bbox"]
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert kinds == {"polygon", "rle"}
    # Most scenes keep 3+ visible objects, and sizes vary across the selection thresholds.
    counts = [len(coco.imgToAnns[i]) for i in coco.imgs]
    assert np.mean(np.array(counts) >= 3) > 0.7
    fracs = [a["area"] / (80 * 60) for a in coco.dataset["annotations"]]
    assert min(fracs) < 0.1 and max(fracs) > 0.2


def test_scenes_have_distinct_objects(synth):
    root, ann, coco = synth
    info = coco.imgs[1]
    img = load_image(os.path.join(root, "images", info["file_name"]))
    means = [img[coco.annToMask(a).astype(bool)].mean(0) for a in coco.imgToAnns[1]]
    assert np.ptp(np.array(means), axis=0).max() > 0.02  # objects differ in colour


def test_same_seed_same_bytes(tmp_path, synth):
    root, _, _ = synth
    generate_synthetic_coco(str(tmp_path / "again"), 16, seed=11, size=(80, 60))
    assert files_bytes(tmp_path / "again") == files_bytes(root)
    generate_synthetic_coco(str(tmp_path / "other"), 16, seed=12, size=(80, 60))
    assert files_bytes(tmp_path / "other")["instances.json"] != files_bytes(root)["instances.json"]


def test_cli(tmp_path, capsys):
    assert (
        main(
            [
                "synth-coco",
                "--out",
                str(tmp_path / "c"),
                "--images",
                "3",
                "--seed",
                "2",
                "--size",
                "48",
                "40",
                "--no-progress",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "c" / "instances.json").read_text())
    assert len(doc["images"]) == 3 and doc["images"][0]["width"] == 48
    assert main(["synth-coco", "--out", str(tmp_path / "d"), "--images", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_photo_style_is_seeded_and_recorded(tmp_path):
    a = generate_synthetic_coco(str(tmp_path / "a"), 6, seed=3, size=(96, 72), style="photo")
    generate_synthetic_coco(str(tmp_path / "b"), 6, seed=3, size=(96, 72), style="photo")
    assert files_bytes(tmp_path / "a") == files_bytes(tmp_path / "b")
    doc = json.loads(open(a).read())
    assert doc["info"]["style"] == "photo" and len(doc["images"]) == 6
    shapes = generate_synthetic_coco(str(tmp_path / "s"), 6, seed=3, size=(96, 72))
    assert json.loads(open(shapes).read())["info"]["style"] == "shapes"


def test_photo_style_paints_background_and_every_object_with_photo_textures(monkeypatch):
    from sagim_tf.data import synth_coco

    calls = []
    real = synth_coco.texture

    def counting(rng, h, w, sources=None):
        calls.append((h, w))
        return real(rng, h, w, sources)

    monkeypatch.setattr(synth_coco, "texture", counting)
    rng = np.random.default_rng(0)
    pixels, objects = synth_coco.synthesize_scene(rng, 64, 48, 3, 3, style="photo")
    assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8
    assert calls == [(48, 64)] * 4  # the background and three objects
    calls.clear()
    synth_coco.synthesize_scene(np.random.default_rng(0), 64, 48, 3, 3, style="shapes")
    assert calls == []


def test_unknown_style_is_refused(tmp_path):
    from sagim_tf.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown scene style 'cartoon'"):
        generate_synthetic_coco(str(tmp_path / "x"), 1, style="cartoon")
    assert not (tmp_path / "x").exists()
