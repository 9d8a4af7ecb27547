"""Build the SAliency Manipulation (SAM) dataset (paper §4.1) as sharded TFRecords.

Steps, for COCO-format annotation files (real MS-COCO or :mod:`sagim_tf.data.synth_coco`):

1. Load every annotation file with pycocotools; check that each annotation names a known
   image and category, and that image ids are unique across files.
2. Select images with :class:`~sagim_tf.data.selection.SelectionRule` (the paper's rule;
   the exact reading is in that module's docstring).
3. Order the selected ids: sorted, then permuted by ``numpy.random.default_rng(seed)``.
   The first ``train`` go to the train split, the next ``test`` to the test split. If fewer
   images are selected than ``train + test``, a warning says so and both splits are scaled
   down in proportion (each keeps at least one image while two or more exist); zero
   selected images is an error.
4. Each split is cut into shards of ``shard_size`` images. For each image: load it (a
   missing or unreadable file is reported, skipped and counted), resize it to ``size``
   (width, height; plain resize, as SalGAN does, area interpolation), quantise it to 8 bits,
   run E on it, resize the candidate objects' masks (area interpolation, threshold 0.5) and
   build the guiding maps with :func:`~sagim_tf.guidance.make_guidance`, using
   ``numpy.random.default_rng([seed, image_id])``, so each record depends on its image
   alone.
5. A shard is written to a temporary file and renamed when complete; a small progress
   record (``.progress/<shard>.json``) follows it. A re-run with the same configuration
   removes stale temporary files, skips shards that are complete and rebuilds the others,
   giving the same bytes as an uninterrupted build. ``manifest.json`` is written last
   (atomically) and the progress folder removed; a build whose manifest exists is done.

Output: ``OUT/{train,test}-KKKKK-of-NNNNN.tfrecord`` (schema in
:mod:`sagim_tf.data.tfrecords`) and ``OUT/manifest.json``.

Test hook: when the environment variable ``SAGIM_BUILD_KILL_AFTER_RECORDS=N`` is set, the
process exits abruptly (``os._exit(75)``) right after writing the N-th record of this run,
in the middle of a shard; the tests use it to check kill-and-resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np

from sagim_tf.guidance import GuidanceConfig, make_guidance, quantize, relative_saliency
from sagim_tf.data.selection import SelectionRule, select_images
from sagim_tf.utils.io import make_readable
from sagim_tf.data.tfrecords import FORMAT_VERSION, MAP_KEYS, encode_jpeg, encode_png, serialize_example
from sagim_tf.utils.errors import ConfigError, InputError

MANIFEST = "manifest.json"
PROGRESS_DIR = ".progress"
KILL_ENV = "SAGIM_BUILD_KILL_AFTER_RECORDS"
PAPER_TRAIN, PAPER_TEST = 4000, 11686


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the dataset's content (saved in the manifest).

    Args:
        size: (width, height) of every stored image and map (default SalGAN's 256x192).
        train, test: images requested per split (default the paper's 4,000 / 11,686).
        seed: seeds the split order and every image's guidance factors.
        shard_size: images per TFRecord shard.
        image_format: ``"jpeg"`` or ``"png"`` for the stored image (maps are always PNG).
        jpeg_quality: JPEG quality of stored images.
        batch_size: images per call of the estimator.
        selection: the selection rule.
        guidance: the guiding-map parameters.
    """

    size: tuple = (256, 192)
    train: int = PAPER_TRAIN
    test: int = PAPER_TEST
    seed: int = 0
    shard_size: int = 256
    image_format: str = "jpeg"
    jpeg_quality: int = 95
    batch_size: int = 8
    selection: SelectionRule = field(default_factory=SelectionRule)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)

    def __post_init__(self):
        size = tuple(int(v) for v in self.size)
        if len(size) != 2 or min(size) < 8:
            raise ConfigError(f"size must be two integers >= 8 (W H), got {self.size}")
        object.__setattr__(self, "size", size)
        if self.train < 0 or self.test < 0 or self.train + self.test == 0:
            raise ConfigError(f"--train and --test must be >= 0 and not both 0, got {self.train}, {self.test}")
        if self.shard_size < 1 or self.batch_size < 1:
            raise ConfigError("shard_size and batch_size must be >= 1")
        if self.image_format not in ("jpeg", "png"):
            raise ConfigError(f"image_format must be 'jpeg' or 'png', got {self.image_format!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def split_counts(n_selected: int, train: int, test: int) -> tuple[int, int]:
    """Train and test counts given ``n_selected`` images (see step 3 of the module doc)."""
    if train + test <= n_selected:
        return train, test
    if train == 0 or test == 0:
        return min(train, n_selected), min(test, n_selected)
    if n_selected < 2:
        return n_selected, 0
    tr = int(round(n_selected * train / (train + test)))
    tr = min(max(tr, 1), n_selected - 1)
    return tr, n_selected - tr


def _load_coco(path):
    from pycocotools.coco import COCO

    if not os.path.isfile(path):
        raise InputError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(path)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a COCO instances file ({exc})") from exc
    if not isinstance(coco.dataset, dict) or "images" not in coco.dataset:
        raise InputError(f"{path}: not a COCO instances file (no 'images')")
    bad_img = [a["id"] for a in coco.dataset.get("annotations", []) if a.get("image_id") not in coco.imgs]
    if bad_img:
        raise InputError(
            f"{path}: {len(bad_img)} annotation(s) name unknown image ids "
            f"(first annotation ids: {bad_img[:5]})"
        )
    bad_cat = [a["id"] for a in coco.dataset.get("annotations", []) if a.get("category_id") not in coco.cats]
    if bad_cat:
        raise InputError(
            f"{path}: {len(bad_cat)} annotation(s) name unknown category ids "
            f"(first annotation ids: {bad_cat[:5]})"
        )
    return coco


def _resolve_estimator(estimator, spec):
    if isinstance(estimator, str):
        from sagim_tf.estimators import build_estimator

        return build_estimator(estimator), estimator
    if callable(estimator):
        name = spec or getattr(estimator, "spec", None)
        if not name:
            name = f"python:{type(estimator).__module__}.{type(estimator).__qualname__}"
        return estimator, name
    raise ConfigError(f"estimator must be a spec string or a callable, got {type(estimator).__name__}")


def _run_estimator(estimator, batch: np.ndarray) -> np.ndarray:
    try:
        import keras

        if isinstance(estimator, keras.Model):
            out = estimator.predict_on_batch(batch)
        else:
            out = estimator(batch)
    except ImportError:  # pragma: no cover
        out = estimator(batch)
    out = np.asarray(out, dtype=np.float32)
    if out.shape != batch.shape[:3] + (1,):
        raise ConfigError(
            f"the estimator returned shape {out.shape} for images {batch.shape}; "
            "expected (B, H, W, 1) at the input size"
        )
    if not np.isfinite(out).all():
        raise InputError("the estimator returned NaN or infinite values")
    return np.clip(out, 0.0, 1.0)


def _resize_mask(mask: np.ndarray, size) -> np.ndarray:
    w, h = size
    if mask.shape == (h, w):
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5


def _find_image(image_dirs, file_name):
    for d in image_dirs:
        p = os.path.join(d, file_name)
        if os.path.isfile(p):
            return p
    return None


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path, obj):
    from sagim_tf.utils.io import atomic_write

    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"

    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, w, suffix=".json")


class _Killer:
    """The test hook (see the module docstring)."""

    def __init__(self):
        v = os.environ.get(KILL_ENV)
        self.left = int(v) if v else None

    def tick(self):
        if self.left is None:
            return
        self.left -= 1
        if self.left <= 0:
            sys.stderr.flush()
            os._exit(75)


def build_sam(images, annotations, out, estimator, config: BuildConfig = BuildConfig(),
              estimator_spec: str | None = None, overwrite: bool = False,
              progress: bool = True, log=None) -> dict:
    """Build SAM under ``out``; returns the manifest (also written to ``out/manifest.json``).

    Args:
        images: a folder, or a list of folders searched in order, holding the images the
            annotation files name (for COCO 2017: ``train2017`` and ``val2017``).
        annotations: one or more COCO instances JSON files.
        out: output folder.
        estimator: a spec string for :func:`sagim_tf.estimators.build_estimator` (e.g.
            ``"itti-koch"``, ``"salgan:PATH"``), or an estimator already built: any callable
            mapping float32 images (B, H, W, 3) in [0, 1] to maps (B, H, W, 1) in [0, 1].
        config: a :class:`BuildConfig`.
        estimator_spec: the name recorded in the manifest for a callable estimator.
        overwrite: replace a finished or partial build made with another configuration.
        progress: show a tqdm progress bar.
        log: a function taking one message line (default: print to stderr).

    Raises:
        InputError: a missing annotation file or image folder, unknown ids, or no image
            selected.
        ConfigError: bad options, or ``out`` holds another configuration's build.
    """
    from tqdm import tqdm

    def say(msg):
        if log is not None:
            log(msg)
        else:
            tqdm.write(f"build-sam: {msg}", file=sys.stderr)

    image_dirs = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    annotations = [annotations] if isinstance(annotations, (str, os.PathLike)) else list(annotations)
    if not annotations:
        raise InputError("give at least one annotation file")
    for a in annotations:
        if not os.path.isfile(a):
            raise InputError(f"annotation file not found: {a}")
    for d in image_dirs:
        if not os.path.isdir(d):
            raise InputError(f"image folder not found: {d}")

    # 1-2. load, check, select.
    cocos, owner, selected = [], {}, {}
    for a in annotations:
        coco = _load_coco(os.fspath(a))
        for image_id in coco.imgs:
            if image_id in owner:
                raise InputError(
                    f"image id {image_id} appears in both {annotations[owner[image_id]]} and {a}"
                )
            owner[image_id] = len(cocos)
        cocos.append(coco)
        selected.update(select_images(coco, config.selection))
    if not selected:
        raise InputError(
            f"no image satisfies the selection rule (more than "
            f"{config.selection.min_objects - 1} objects covering "
            f"{config.selection.min_fraction:.0%}-{config.selection.max_fraction:.0%} of the image) "
            f"among {len(owner)} images in {', '.join(map(str, annotations))}"
        )

    # 3. split.
    ids = np.array(sorted(selected), dtype=np.int64)
    order = ids[np.random.default_rng(config.seed).permutation(len(ids))]
    n_train, n_test = split_counts(len(ids), config.train, config.test)
    if n_train + n_test < config.train + config.test:
        say(f"only {len(ids)} images satisfy the selection rule, fewer than the "
            f"{config.train} + {config.test} asked; using {n_train} train + {n_test} test")
    splits = {"train": [int(v) for v in order[:n_train]],
              "test": [int(v) for v in order[n_train:n_train + n_test]]}

    est, spec = _resolve_estimator(estimator, estimator_spec)
    fingerprint = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "estimator": spec,
        "annotations": [os.path.basename(os.fspath(a)) for a in annotations],
        "selected_sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
    }

    # Output folder state.
    os.makedirs(out, exist_ok=True)
    progress_dir = os.path.join(out, PROGRESS_DIR)
    manifest_path = os.path.join(out, MANIFEST)
    fp_path = os.path.join(progress_dir, "fingerprint.json")
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("fingerprint") == fingerprint:
            say(f"{out} already holds this build (manifest.json); nothing to do")
            return old
        if not overwrite:
            raise ConfigError(f"{out} holds a finished build of another configuration; "
                              "choose another --out or pass --overwrite")
        _clear(out)
    elif os.path.isfile(fp_path):
        with open(fp_path, encoding="utf-8") as f:
            old_fp = json.load(f)
        if old_fp != fingerprint:
            if not overwrite:
                raise ConfigError(f"{out} holds a partial build of another configuration; "
                                  "choose another --out or pass --overwrite")
            _clear(out)
    elif glob.glob(os.path.join(out, "*.tfrecord")):
        if not overwrite:
            raise ConfigError(f"{out} already holds TFRecord files from elsewhere; "
                              "choose another --out or pass --overwrite")
        _clear(out)
    for stale in glob.glob(os.path.join(out, ".tmp-*")):
        os.remove(stale)
    os.makedirs(progress_dir, exist_ok=True)
    _write_json(fp_path, fingerprint)

    # 4-5. shards.
    plan = []
    for split, split_ids in splits.items():
        n_shards = math.ceil(len(split_ids) / config.shard_size)
        for k in range(n_shards):
            name = f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord"
            plan.append((split, name, split_ids[k * config.shard_size:(k + 1) * config.shard_size]))

    killer = _Killer()
    shard_infos = []
    bar = tqdm(total=sum(len(p[2]) for p in plan), desc="build-sam", unit="img", disable=not progress)
    try:
        for split, name, shard_ids in plan:
            info_path = os.path.join(progress_dir, name + ".json")
            shard_path = os.path.join(out, name)
            if os.path.isfile(info_path) and os.path.isfile(shard_path):
                with open(info_path, encoding="utf-8") as f:
                    info = json.load(f)
                if info.get("sha256") == _sha256(shard_path):
                    shard_infos.append(info)
                    bar.update(len(shard_ids))
                    continue
            info = _build_shard(split, name, shard_ids, out, est, cocos, owner, selected, image_dirs,
                                config, bar, say, killer)
            _write_json(info_path, info)
            shard_infos.append(info)
    finally:
        bar.close()

    manifest = _manifest(fingerprint, config, spec, annotations, len(owner), len(ids),
                         n_train, n_test, shard_infos)
    _write_json(manifest_path, manifest)
    shutil.rmtree(progress_dir, ignore_errors=True)
    say(f"wrote {manifest['counts']['train']} train + {manifest['counts']['test']} test records "
        f"to {out} ({sum(manifest['counts']['skipped'].values())} skipped)")
    return manifest


def _clear(out):
    for p in glob.glob(os.path.join(out, "*.tfrecord")) + glob.glob(os.path.join(out, ".tmp-*")):
        os.remove(p)
    for p in (os.path.join(out, MANIFEST),):
        if os.path.exists(p):
            os.remove(p)
    shutil.rmtree(os.path.join(out, PROGRESS_DIR), ignore_errors=True)


def _build_shard(split, name, shard_ids, out, est, cocos, owner, selected, image_dirs, config,
                 bar, say, killer) -> dict:
    import tempfile

    import tensorflow as tf

    from sagim_tf.utils.io import load_image

    w, h = config.size
    skipped = {"missing": [], "corrupt": [], "degenerate": [], "guidance": []}
    n_written, n_flipped = 0, 0
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".tfrecord")
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for start in range(0, len(shard_ids), config.batch_size):
                chunk = shard_ids[start:start + config.batch_size]
                loaded = []
                for image_id in chunk:
                    coco = cocos[owner[image_id]]
                    info = coco.imgs[image_id]
                    path = _find_image(image_dirs, info["file_name"])
                    if path is None:
                        say(f"missing image {info['file_name']} (id {image_id}); skipped")
                        skipped["missing"].append(image_id)
                        bar.update(1)
                        continue
                    try:
                        img = load_image(path)
                    except InputError as exc:
                        say(f"unreadable image (id {image_id}): {exc}; skipped")
                        skipped["corrupt"].append(image_id)
                        bar.update(1)
                        continue
                    if img.shape[:2] != (h, w):
                        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                    pixels = quantize(img)
                    loaded.append((image_id, info, pixels))
                if not loaded:
                    continue
                batch = np.stack([p for _, _, p in loaded]).astype(np.float32) / 255.0
                maps = _run_estimator(est, batch)
                for (image_id, info, pixels), smap in zip(loaded, maps):
                    rec = _make_record(image_id, info, pixels, smap[..., 0], cocos[owner[image_id]],
                                       selected[image_id], config)
                    bar.update(1)
                    if isinstance(rec, str):
                        say(f"image id {image_id}: {rec}; skipped")
                        skipped["degenerate" if rec.startswith("fewer") else "guidance"].append(image_id)
                        continue
                    writer.write(serialize_example(rec))
                    n_written += 1
                    g = rec["guidance"][..., 0].astype(np.float64)
                    n_flipped += int(relative_saliency(g, rec["mask_low"][..., 0] > 0, rec["mask_high"][..., 0] > 0) > 0)
                    killer.tick()
        make_readable(tmp)
        os.replace(tmp, os.path.join(out, name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"file": name, "split": split, "records": n_written, "flipped": n_flipped,
            "skipped": skipped, "sha256": _sha256(os.path.join(out, name))}


def _make_record(image_id, info, pixels, smap, coco, candidates, config):
    s8 = quantize(smap)
    s = s8.astype(np.float32) / 255.0
    masks, anns = [], []
    for ann in candidates:
        m = _resize_mask(coco.annToMask(ann), config.size)
        if m.any():
            masks.append(m)
            anns.append(ann)
    if len(masks) < 2:
        return "fewer than two object masks remain at the output size"
    rng = np.random.default_rng([int(config.seed), int(image_id)])
    res = make_guidance(s, masks, rng, config.guidance)
    if res is None:
        return "no guidance draw raised O_low relative to O_high"
    low, high = anns[res.low], anns[res.high]
    if config.image_format == "jpeg":
        encoded = encode_jpeg(pixels, config.jpeg_quality)
    else:
        encoded = encode_png(pixels)
    m_low = (masks[res.low].astype(np.uint8) * 255)[..., None]
    return {
        "image_encoded": encoded,
        "image_format": config.image_format,
        "image_id": image_id,
        "file_name": info["file_name"],
        "saliency": s8[..., None],
        "guidance": quantize(res.guidance)[..., None],
        "guidance_binary": m_low,
        "mask_low": m_low,
        "mask_high": (masks[res.high].astype(np.uint8) * 255)[..., None],
        "low_ann_id": low["id"],
        "high_ann_id": high["id"],
        "low_category_id": low["category_id"],
        "high_category_id": high["category_id"],
        "factors": [res.raise_to, res.lower_factor],
        "object_ann_ids": [a["id"] for a in anns],
        "object_mean_saliency": [float(v) for v in res.means],
    }


def _manifest(fingerprint, config, spec, annotations, n_images, n_selected, n_train, n_test, shard_infos):
    skipped = {"missing": [], "corrupt": [], "degenerate": [], "guidance": []}
    for info in shard_infos:
        for k, v in info["skipped"].items():
            skipped[k].extend(v)
    counts = {
        "images_in_annotations": n_images,
        "selected": n_selected,
        "requested": {"train": config.train, "test": config.test},
        "assigned": {"train": n_train, "test": n_test},
        "train": sum(i["records"] for i in shard_infos if i["split"] == "train"),
        "test": sum(i["records"] for i in shard_infos if i["split"] == "test"),
        "skipped": {k: len(v) for k, v in skipped.items()},
        "flipped": sum(i["flipped"] for i in shard_infos),
    }
    return {
        "format_version": FORMAT_VERSION,
        "dataset": "SAM (SAliency Manipulation), sagim_tf",
        "estimator": spec,
        "seed": config.seed,
        "size": list(config.size),
        "config": config.to_dict(),
        "annotations": [os.path.basename(os.fspath(a)) for a in annotations],
        "counts": counts,
        "skipped_ids": {k: sorted(v) for k, v in skipped.items()},
        "shards": [{"file": i["file"], "split": i["split"], "records": i["records"], "sha256": i["sha256"]}
                   for i in shard_infos],
        "features": {"maps": list(MAP_KEYS), "image_format": config.image_format},
        "fingerprint": fingerprint,
    }


def read_manifest(data_dir) -> dict:
    """The ``manifest.json`` of a built SAM folder (checked for the format version)."""
    path = os.path.join(os.fspath(data_dir), MANIFEST)
    if not os.path.isfile(path):
        raise InputError(f"{data_dir}: no {MANIFEST}; is this a finished build-sam output?")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: format version {manifest.get('format_version')} is not "
                         f"the supported {FORMAT_VERSION}; rebuild the dataset")
    return manifest
