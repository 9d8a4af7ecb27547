"""Writing SAM shards, and finding the ones a re-run can keep.

A shard is written to a temporary file in the output folder and renamed when complete; a
small progress record (``.progress/<shard>.json``, with the shard's SHA-256) follows it. A
re-run keeps a shard whose file still matches its progress record and rebuilds the others,
so an interrupted build resumes to the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from sagim_tf.data.sam.manifest import MANIFEST, empty_skips
from sagim_tf.data.tfrecords import encode_jpeg, encode_png, serialize_example
from sagim_tf.guidance import make_guidance, quantize, relative_saliency
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.io import load_image, make_readable, write_json

logger = logging.getLogger(__name__)

PROGRESS_DIR = ".progress"


class RecordSkipped(Exception):
    """An image that yields no record; ``reason`` is one of ``SKIP_REASONS``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Shard:
    """One shard of the plan: its split, file name and image ids, in order."""

    split: str
    name: str
    ids: Sequence[int]


@dataclass
class ShardSources:
    """What every shard of one build reads from.

    Attributes:
        out: the output folder.
        estimator: a callable (B, H, W, 3) -> (B, H, W, 1) in [0, 1].
        cocos: the loaded ``pycocotools.coco.COCO`` objects.
        owner: image id -> index of its COCO object in ``cocos``.
        candidates: image id -> its candidate object annotations (from the selection).
        image_dirs: folders searched, in order, for the image files.
        config: the :class:`~sagim_tf.data.sam.builder.BuildConfig`.
        on_image: called once per image handled (the progress bar's ``update``).
        say: called with each message line.
    """

    out: str
    estimator: Callable
    cocos: Sequence
    owner: Mapping[int, int]
    candidates: Mapping[int, Sequence[Mapping]]
    image_dirs: Sequence[str]
    config: object
    on_image: Callable[[int], object]
    say: Callable[[str], None]


def plan_shards(splits: Mapping[str, Sequence[int]], shard_size: int) -> list[Shard]:
    """Cut each split's ids into shards named ``SPLIT-KKKKK-of-NNNNN.tfrecord``."""
    plan = []
    for split, ids in splits.items():
        n_shards = -(-len(ids) // shard_size)
        for k in range(n_shards):
            name = f"{split}-{k:05d}-of-{n_shards:05d}.tfrecord"
            plan.append(Shard(split, name, list(ids[k * shard_size : (k + 1) * shard_size])))
    return plan


def sha256(path) -> str:
    """The SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def finished_shard(out, name: str) -> dict | None:
    """The progress record of shard ``name`` if its file is complete and unchanged, else None."""
    info_path = os.path.join(out, PROGRESS_DIR, name + ".json")
    shard_path = os.path.join(out, name)
    if not (os.path.isfile(info_path) and os.path.isfile(shard_path)):
        return None
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    return info if info.get("sha256") == sha256(shard_path) else None


def record_progress(out, info: Mapping) -> None:
    """Write a finished shard's progress record (after its file was renamed into place)."""
    write_json(os.path.join(out, PROGRESS_DIR, info["file"] + ".json"), info, sort_keys=True)


def remove_stale(out) -> None:
    """Delete temporary files an interrupted build left in ``out``."""
    for stale in glob.glob(os.path.join(out, ".tmp-*")):
        os.remove(stale)


def clear_build(out) -> None:
    """Delete a build's shards, temporary files, manifest and progress records."""
    for p in glob.glob(os.path.join(out, "*.tfrecord")):
        os.remove(p)
    remove_stale(out)
    if os.path.exists(os.path.join(out, MANIFEST)):
        os.remove(os.path.join(out, MANIFEST))
    shutil.rmtree(os.path.join(out, PROGRESS_DIR), ignore_errors=True)


def run_estimator(estimator, batch: np.ndarray) -> np.ndarray:
    """E's maps of a (B, H, W, 3) batch, checked and clipped to [0, 1]."""
    if isinstance(estimator, keras.Model):
        out = estimator.predict_on_batch(batch)
    else:
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


def _load(image_id: int, src: ShardSources):
    """``(info, pixels)`` of one image at the build size; raises RecordSkipped."""
    info = src.cocos[src.owner[image_id]].imgs[image_id]
    path = _find_image(src.image_dirs, info["file_name"])
    if path is None:
        raise RecordSkipped("missing", f"missing image {info['file_name']} (id {image_id})")
    try:
        # as stored: COCO's masks are drawn on the stored width and height, whatever the
        # file's EXIF orientation says
        img = load_image(path, orientation=False)
    except InputError as exc:
        raise RecordSkipped("corrupt", f"unreadable image (id {image_id}): {exc}") from exc
    w, h = src.config.size
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return info, quantize(img)


def make_record(
    image_id: int,
    info: Mapping,
    pixels: np.ndarray,
    smap: np.ndarray,
    coco,
    candidates: Sequence[Mapping],
    config,
) -> dict:
    """One SAM record (the fields of :func:`~sagim_tf.data.tfrecords.serialize_example`).

    Args:
        image_id: the COCO image id (seeds this image's guidance draw with the build seed).
        info: the COCO image entry.
        pixels: the image at the build size, uint8 (H, W, 3).
        smap: E's map of the image, float (H, W) in [0, 1].
        coco: the image's ``pycocotools.coco.COCO``.
        candidates: the image's candidate object annotations.
        config: the :class:`~sagim_tf.data.sam.builder.BuildConfig`.

    Raises:
        RecordSkipped: ``"degenerate"`` when fewer than two object masks remain at the
            build size, ``"guidance"`` when no guidance draw raised O_low.
    """
    s8 = quantize(smap)
    s = s8.astype(np.float32) / 255.0
    masks, anns = [], []
    for ann in candidates:
        m = _resize_mask(coco.annToMask(ann), config.size)
        if m.any():
            masks.append(m)
            anns.append(ann)
    if len(masks) < 2:
        raise RecordSkipped("degenerate", "fewer than two object masks remain at the output size")
    rng = np.random.default_rng([int(config.seed), int(image_id)])
    res = make_guidance(s, masks, rng, config.guidance)
    if res is None:
        raise RecordSkipped("guidance", "no guidance draw raised O_low relative to O_high")
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


def _flips(record: Mapping) -> bool:
    """Whether the stored guiding map puts O_low above O_high."""
    g = record["guidance"][..., 0].astype(np.float64)
    return relative_saliency(g, record["mask_low"][..., 0] > 0, record["mask_high"][..., 0] > 0) > 0


def build_shard(shard: Shard, src: ShardSources) -> dict:
    """Write one shard atomically (temporary file, then rename) and return its progress record.

    Returns:
        ``{"file", "split", "records", "flipped", "skipped": {reason: [ids]}, "sha256"}``.
    """
    config = src.config
    skipped = empty_skips()
    n_written, n_flipped = 0, 0
    final = os.path.join(src.out, shard.name)
    fd, tmp = tempfile.mkstemp(dir=src.out, prefix=".tmp-", suffix=".tfrecord")
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for start in range(0, len(shard.ids), config.batch_size):
                loaded = []
                for image_id in shard.ids[start : start + config.batch_size]:
                    try:
                        loaded.append((image_id, *_load(image_id, src)))
                    except RecordSkipped as skip:
                        src.say(f"{skip}; skipped")
                        skipped[skip.reason].append(image_id)
                        src.on_image(1)
                if not loaded:
                    continue
                batch = np.stack([p for _, _, p in loaded]).astype(np.float32) / 255.0
                maps = run_estimator(src.estimator, batch)
                for (image_id, info, pixels), smap in zip(loaded, maps):
                    src.on_image(1)
                    coco = src.cocos[src.owner[image_id]]
                    try:
                        record = make_record(
                            image_id,
                            info,
                            pixels,
                            smap[..., 0],
                            coco,
                            src.candidates[image_id],
                            config,
                        )
                    except RecordSkipped as skip:
                        src.say(f"image id {image_id}: {skip}; skipped")
                        skipped[skip.reason].append(image_id)
                        continue
                    writer.write(serialize_example(record))
                    n_written += 1
                    n_flipped += int(_flips(record))
        make_readable(tmp)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {
        "file": shard.name,
        "split": shard.split,
        "records": n_written,
        "flipped": n_flipped,
        "skipped": skipped,
        "sha256": sha256(final),
    }
