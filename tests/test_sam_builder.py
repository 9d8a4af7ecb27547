"""The SAM builder: selection, guiding maps, determinism, resume after a kill, bad inputs."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sagim_tf.cli import main
from sagim_tf.data import BuildConfig, GuidanceConfig, SelectionRule, build_sam, read_records
from sagim_tf.data.sam.builder import split_counts
from sagim_tf.data.sam.shards import RecordSkipped, make_record
from sagim_tf.guidance import make_guidance
from sagim_tf.utils.errors import ConfigError, InputError
from tests.sam_helpers import (
    KILLED,
    files_bytes,
    register_test_estimator,
    save_test_estimator,
    tiny_build,
)

SIGMA_FRACTION = 0.05
SIZE = (64, 48)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam")
    synth, out, manifest = tiny_build(str(root), sigma_fraction=SIGMA_FRACTION, size=SIZE)
    records = [r for s in manifest["shards"] for r in read_records(os.path.join(out, s["file"]))]
    return root, synth, out, manifest, records


def _rule_from_json(path):
    """The selection rule, computed from the raw JSON without the package."""
    doc = json.load(open(path))
    size = {im["id"]: im["width"] * im["height"] for im in doc["images"]}
    good = {}
    for a in doc["annotations"]:
        if not a["iscrowd"] and 0.1 <= a["area"] / size[a["image_id"]] <= 0.7:
            good.setdefault(a["image_id"], []).append(a["id"])
    return {i: sorted(v) for i, v in good.items() if len(v) > 2}


def test_selected_count_matches_rule(built):
    root, synth, out, manifest, records = built
    expected = _rule_from_json(os.path.join(synth, "instances.json"))
    assert (
        0
        < manifest["counts"]["selected"]
        == len(expected)
        < manifest["counts"]["images_in_annotations"]
    )
    for r in records:
        assert r["image_id"] in expected
        assert r["object_ann_ids"] == expected[r["image_id"]]
        assert {r["low_ann_id"], r["high_ann_id"]} <= set(expected[r["image_id"]])


def test_manifest(built):
    root, synth, out, manifest, records = built
    c = manifest["counts"]
    assert (c["train"], c["test"]) == (8, 6) == (c["assigned"]["train"], c["assigned"]["test"])
    assert len(records) == 14 and len({r["image_id"] for r in records}) == 14
    assert manifest["format_version"] == 1 and manifest["seed"] == 5
    assert manifest["estimator"] == "test-contrast" and manifest["size"] == list(SIZE)
    assert sum(c["skipped"].values()) == 0
    files = sorted(f for f in os.listdir(out))
    assert files == sorted(["manifest.json"] + [s["file"] for s in manifest["shards"]])
    assert [s["file"] for s in manifest["shards"]][:3] == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
    ]


def test_guiding_maps(built):
    root, synth, out, manifest, records = built
    sigma = SIGMA_FRACTION * min(SIZE)
    bound = 2.0 / (sigma * np.sqrt(2 * np.pi)) + 2.0 / 255  # Gaussian of a [0, 1] map, + rounding
    flipped = 0
    for r in records:
        s = r["saliency"][..., 0] / 255.0
        g = r["guidance"][..., 0] / 255.0
        lo, hi = r["mask_low"][..., 0] > 0, r["mask_high"][..., 0] > 0
        assert r["image"].shape == (SIZE[1], SIZE[0], 3) and g.shape == (SIZE[1], SIZE[0])
        assert lo.any() and hi.any() and r["low_ann_id"] != r["high_ann_id"]
        assert set(np.unique(r["mask_low"])) <= {0, 255}
        np.testing.assert_array_equal(r["guidance_binary"], r["mask_low"])
        assert 0.0 <= g.min() and g.max() <= 1.0
        # O_low's mean rises relative to O_high's, in the stored maps.
        assert g[lo].mean() - g[hi].mean() > s[lo].mean() - s[hi].mean()
        assert g[lo].mean() / max(g[hi].mean(), 1e-6) > s[lo].mean() / max(s[hi].mean(), 1e-6)
        # O_low was the least and O_high the most salient candidate.
        means = r["object_mean_saliency"]
        assert r["object_ann_ids"][int(np.argmin(means))] == r["low_ann_id"]
        assert r["object_ann_ids"][int(np.argmax(means))] == r["high_ann_id"]
        # Smooth: neighbour differences stay under the Gaussian's bound.
        assert (
            np.abs(np.diff(g, axis=0)).max() <= bound and np.abs(np.diff(g, axis=1)).max() <= bound
        )
        a, b = r["factors"]
        assert 0.5 <= a <= 1.0 and 0.2 <= b <= 0.6
        flipped += g[lo].mean() > g[hi].mean()
    assert flipped == manifest["counts"]["flipped"] and flipped >= 0.8 * len(records)


def test_guidance_unit():
    rng = np.random.default_rng(0)
    s = np.full((40, 40), 0.1, np.float32)
    masks = [np.zeros((40, 40), bool) for _ in range(3)]
    masks[0][2:12, 2:12] = True
    masks[1][20:35, 5:20] = True
    masks[2][5:30, 25:38] = True
    s[masks[0]] = 0.0  # E gives O_low nothing: the additive raise still lifts it
    s[masks[2]] = 1.0
    res = make_guidance(s, masks, rng, GuidanceConfig(sigma_fraction=0.05))
    assert (res.low, res.high) == (0, 2)
    g = res.guidance
    assert 0 <= g.min() and g.max() <= 1
    assert g[masks[0]].mean() > 0.02 and g[masks[2]].mean() < 0.7
    np.testing.assert_array_equal(res.binary, masks[0])
    # O_low is lifted relative to O_high's mean, so the order flips (r >= b here).
    assert g[masks[0]].mean() > g[masks[2]].mean()
    for bad in ((0.0, 1.0), (1.0, 0.5), (0.5, 2.5)):
        with pytest.raises(ConfigError, match="raise_range"):
            GuidanceConfig(raise_range=bad)


def test_same_seed_same_bytes(built, tmp_path):
    root, synth, out, manifest, records = built
    cfg = BuildConfig(
        size=SIZE,
        train=8,
        test=6,
        seed=5,
        shard_size=3,
        guidance=GuidanceConfig(sigma_fraction=SIGMA_FRACTION),
    )
    build_sam(
        os.path.join(synth, "images"),
        [os.path.join(synth, "instances.json")],
        str(tmp_path / "again"),
        "test-contrast",
        cfg,
        progress=False,
        log=lambda m: None,
    )
    assert files_bytes(tmp_path / "again") == files_bytes(out)


def test_estimator_object_and_seed(built, tmp_path):
    root, synth, out, manifest, records = built

    def flat_plus_red(images):  # any callable with the estimator's call shape
        return np.clip(0.2 + 0.6 * images[..., :1] - 0.3 * images[..., 1:2], 0, 1)

    cfg = BuildConfig(size=SIZE, train=8, test=6, seed=6, shard_size=3)
    m = build_sam(
        os.path.join(synth, "images"),
        [os.path.join(synth, "instances.json")],
        str(tmp_path / "obj"),
        flat_plus_red,
        cfg,
        estimator_spec="red",
        progress=False,
        log=lambda m: None,
    )
    assert m["estimator"] == "red" and m["counts"]["train"] + m["counts"]["test"] == 14
    ids = [s["file"] for s in m["shards"]]
    first = read_records(os.path.join(tmp_path / "obj", ids[0]))[0]
    assert first["image_id"] != records[0]["image_id"] or first["factors"] != records[0]["factors"]


class _Masks:
    """A stand-in for pycocotools' COCO: ``annToMask`` returns the masks given by id."""

    def __init__(self, masks):
        self.masks = masks

    def annToMask(self, ann):  # noqa: N802 (pycocotools' name)
        return self.masks[ann["id"]]


def test_make_record_says_why_it_skips():
    w, h = 32, 24
    cfg = BuildConfig(size=(w, h), train=1, test=1, image_format="png")
    pixels = np.full((h, w, 3), 128, np.uint8)
    smap = np.full((h, w), 0.2, np.float32)
    low, high, empty = (np.zeros((h, w), np.uint8) for _ in range(3))
    low[2:10, 2:12] = 1
    high[12:22, 16:30] = 1
    smap[high > 0] = 0.9
    anns = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}, {"id": 3, "category_id": 1}]
    coco = _Masks({1: low, 2: high, 3: empty})
    with pytest.raises(RecordSkipped, match="fewer than two") as caught:
        make_record(7, {"file_name": "x.png"}, pixels, smap, coco, [anns[0], anns[2]], cfg)
    assert caught.value.reason == "degenerate"
    record = make_record(7, {"file_name": "x.png"}, pixels, smap, coco, anns, cfg)
    assert (record["low_ann_id"], record["high_ann_id"]) == (1, 2)
    assert record["object_ann_ids"] == [1, 2]  # the empty mask is not a candidate


def test_split_counts():
    assert split_counts(100, 40, 50) == (40, 50)
    assert split_counts(10, 4000, 11686) == (3, 7)
    assert split_counts(1, 5, 5) == (1, 0)
    assert split_counts(10, 20, 0) == (10, 0)


def _copy_synth(synth, dst):
    shutil.copytree(synth, dst)
    return os.path.join(dst, "images"), os.path.join(dst, "instances.json")


def test_missing_and_corrupt_images_are_skipped(built, tmp_path):
    root, synth, out, manifest, records = built
    images, ann = _copy_synth(synth, tmp_path / "s")
    used = sorted(r["file_name"] for r in records)
    os.remove(os.path.join(images, used[0]))
    with open(os.path.join(images, used[1]), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    log = []
    cfg = BuildConfig(
        size=SIZE,
        train=8,
        test=6,
        seed=5,
        shard_size=3,
        guidance=GuidanceConfig(sigma_fraction=SIGMA_FRACTION),
    )
    m = build_sam(
        images, [ann], str(tmp_path / "o"), "test-contrast", cfg, progress=False, log=log.append
    )
    assert m["counts"]["skipped"]["missing"] == 1 and m["counts"]["skipped"]["corrupt"] == 1
    assert m["counts"]["train"] + m["counts"]["test"] == 12
    assert any("missing" in line for line in log) and any("unreadable" in line for line in log)


def test_bad_inputs(built, tmp_path, capsys):
    root, synth, out, manifest, records = built
    images, ann = os.path.join(synth, "images"), os.path.join(synth, "instances.json")
    register_test_estimator()
    cfg = BuildConfig(size=SIZE, train=2, test=2)
    quiet = dict(progress=False, log=lambda m: None)
    # Missing annotation file: the API and the CLI.
    with pytest.raises(InputError, match="annotation file not found"):
        build_sam(
            images,
            [ann, str(tmp_path / "nope.json")],
            str(tmp_path / "o1"),
            "test-contrast",
            cfg,
            **quiet,
        )
    rc = main(
        [
            "build-sam",
            "--images",
            images,
            "--annotations",
            str(tmp_path / "nope.json"),
            "--out",
            str(tmp_path / "o1"),
            "--estimator",
            "test-contrast",
            "--no-progress",
        ]
    )
    assert rc == 2 and "annotation file not found" in capsys.readouterr().err
    # Unknown image id and unknown category id.
    doc = json.load(open(ann))
    bad = dict(
        doc,
        annotations=doc["annotations"] + [dict(doc["annotations"][0], id=99999, image_id=424242)],
    )
    (tmp_path / "bad_img.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="unknown image ids"):
        build_sam(
            images,
            [str(tmp_path / "bad_img.json")],
            str(tmp_path / "o2"),
            "test-contrast",
            cfg,
            **quiet,
        )
    bad = dict(
        doc,
        annotations=doc["annotations"] + [dict(doc["annotations"][0], id=99999, category_id=77)],
    )
    (tmp_path / "bad_cat.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="unknown category ids"):
        build_sam(
            images,
            [str(tmp_path / "bad_cat.json")],
            str(tmp_path / "o3"),
            "test-contrast",
            cfg,
            **quiet,
        )
    # The same file twice: duplicate image ids.
    with pytest.raises(InputError, match="appears in both"):
        build_sam(images, [ann, ann], str(tmp_path / "o4"), "test-contrast", cfg, **quiet)
    # Zero selected images.
    small = dict(doc, annotations=[dict(a, area=1.0) for a in doc["annotations"]])
    (tmp_path / "small.json").write_text(json.dumps(small))
    with pytest.raises(InputError, match="no image satisfies the selection rule"):
        build_sam(
            images,
            [str(tmp_path / "small.json")],
            str(tmp_path / "o5"),
            "test-contrast",
            cfg,
            **quiet,
        )
    # Not JSON at all.
    (tmp_path / "junk.json").write_text("{ not json")
    with pytest.raises(InputError):
        build_sam(
            images,
            [str(tmp_path / "junk.json")],
            str(tmp_path / "o6"),
            "test-contrast",
            cfg,
            **quiet,
        )
    # Missing image folder, unknown estimator, bad options.
    with pytest.raises(InputError, match="image folder not found"):
        build_sam(
            str(tmp_path / "noimg"), [ann], str(tmp_path / "o7"), "test-contrast", cfg, **quiet
        )
    with pytest.raises(ConfigError, match="unknown estimator"):
        build_sam(images, [ann], str(tmp_path / "o8"), "no-such-estimator", cfg, **quiet)
    with pytest.raises(ConfigError):
        BuildConfig(train=0, test=0)
    with pytest.raises(ConfigError):
        SelectionRule(min_fraction=0.8, max_fraction=0.7)
    # Another configuration's finished build in --out.
    with pytest.raises(ConfigError, match="another configuration"):
        build_sam(images, [ann], out, "test-contrast", cfg, **quiet)


def _cli_build(synth, out, spec, die_at_record=None):
    """``sagim build-sam`` in a subprocess; with ``die_at_record`` it crashes at that record."""
    if die_at_record is None:
        cmd = [sys.executable, "-m", "sagim_tf"]
    else:
        cmd = [sys.executable, "-m", "tests.sam_helpers", "--die-at-record", str(die_at_record)]
    cmd += [
        "build-sam",
        "--images",
        os.path.join(synth, "images"),
        "--annotations",
        os.path.join(synth, "instances.json"),
        "--out",
        out,
        "--estimator",
        spec,
        "--train",
        "8",
        "--test",
        "6",
        "--size",
        str(SIZE[0]),
        str(SIZE[1]),
        "--seed",
        "5",
        "--shard-size",
        "3",
        "--no-progress",
    ]
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    return subprocess.run(
        cmd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )


def test_kill_and_resume(built, tmp_path):
    root, synth, out, manifest, records = built
    spec = save_test_estimator(tmp_path / "contrast.keras")
    reference = str(tmp_path / "reference")
    cfg = BuildConfig(size=SIZE, train=8, test=6, seed=5, shard_size=3)
    build_sam(
        os.path.join(synth, "images"),
        [os.path.join(synth, "instances.json")],
        reference,
        spec,
        cfg,
        progress=False,
        log=lambda m: None,
    )
    ref = files_bytes(reference)

    target = str(tmp_path / "killed")
    # 8 train records in shards of 3: record 8 is the second of the third shard.
    killed = _cli_build(synth, target, spec, die_at_record=8)
    assert killed.returncode == KILLED, killed.stderr[-2000:]
    left = sorted(os.listdir(target))
    assert "manifest.json" not in left
    finished = [f for f in left if f.endswith(".tfrecord") and not f.startswith(".tmp-")]
    assert finished == ["train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord"]
    for f in finished:  # finished shards are complete, never half-written
        assert files_bytes(target)[f] == ref[f]
    assert any(f.startswith(".tmp-") for f in left)  # the shard in progress was a temporary file

    resumed = _cli_build(synth, target, spec)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert files_bytes(target) == ref
