"""tf.data input for SAM: a training view and an evaluation view of the built TFRecords.

Training view (:func:`train_dataset`): batches of ``(image, guidance)``, float32,
``(B, H, W, 3)`` in [0, 1] and ``(B, H, W, 1)`` in [0, 1], ready for ``model.fit``.
Shards are read interleaved, records shuffled, decoded in parallel
(``num_parallel_calls=AUTOTUNE``), optionally flipped left-right (the image and its maps
together, by one stateless draw per record, so a seeded run flips the same records every
time), resized to ``size``, batched and prefetched.

Evaluation view (:func:`eval_dataset`): batches of dicts with ``image``, ``guidance``
(continuous), ``guidance_binary``, ``mask_low``, ``mask_high``, ``saliency`` (E's map of
the original), all float32 in [0, 1], and the int64 ids ``image_id``, ``low_ann_id``,
``high_ann_id``. No shuffle, no flip, every record once, in shard order.

Resizing: when ``size`` (width, height) differs from the stored size, images and continuous
maps are resized bilinearly (with antialiasing) and masks (binary guidance, O_low, O_high)
by nearest neighbour, so they stay binary.

Determinism: with ``deterministic=True`` (the default of the evaluation view, and of the
training view when a ``seed`` is given) the order and the flips are the same on every run.
"""

from __future__ import annotations

import os

import tensorflow as tf

from sagim_tf.data import GUIDANCE_KINDS
from sagim_tf.data.sam.manifest import read_manifest
from sagim_tf.data.tfrecords import feature_spec
from sagim_tf.utils.errors import ConfigError, InputError

SPLITS = ("train", "test")


def shard_files(data_dir, split: str) -> list[str]:
    """The shard paths of one split, in manifest order (each checked to exist)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    manifest = read_manifest(data_dir)
    files = [os.path.join(os.fspath(data_dir), s["file"]) for s in manifest["shards"]
             if s["split"] == split and s["records"] > 0]
    if not files:
        raise InputError(f"{data_dir}: the {split} split has no records")
    for f in files:
        if not os.path.isfile(f):
            raise InputError(f"{f}: shard listed in the manifest is missing")
    return files


def split_size(data_dir, split: str) -> int:
    """Number of records in a split, from the manifest."""
    return int(read_manifest(data_dir)["counts"][split])


def _resolve_size(data_dir, size):
    if size is None:
        return tuple(int(v) for v in read_manifest(data_dir)["size"])
    size = tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"size must be (width, height), got {size}")
    return size


def _decoder(size):
    width, height = size
    spec = feature_spec()

    def decode_map(data, method):
        m = tf.io.decode_png(data, channels=1)
        m = tf.ensure_shape(m, [None, None, 1])
        m = tf.image.convert_image_dtype(m, tf.float32)
        if method == "nearest":
            m = tf.image.resize(m, (height, width), method="nearest")
        else:
            m = tf.image.resize(m, (height, width), method="bilinear", antialias=True)
        return tf.clip_by_value(m, 0.0, 1.0)

    def decode(serialized, keys):
        ex = tf.io.parse_single_example(serialized, spec)
        img = tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False)
        img = tf.ensure_shape(img, [None, None, 3])
        img = tf.image.convert_image_dtype(img, tf.float32)
        img = tf.clip_by_value(tf.image.resize(img, (height, width), method="bilinear", antialias=True), 0.0, 1.0)
        out = {"image": img}
        for key in keys:
            method = "bilinear" if key in ("guidance", "saliency") else "nearest"
            out[key] = decode_map(ex[f"{key}/encoded"], method)
        out["image_id"] = ex["image/id"]
        out["low_ann_id"] = ex["low/ann_id"]
        out["high_ann_id"] = ex["high/ann_id"]
        return out

    return decode


# Added to the second word of an element's flip seed to key its binary-or-continuous pick
# under ``guidance="mixed"``: element indices stay far below 2**40, so the pick's seed never
# equals another element's flip seed and the two draws stay independent.
MIXED_PICK_SEED_OFFSET = 2**40


def train_dataset(data_dir, split: str = "train", batch_size: int = 4, size=None,
                  shuffle: bool = True, shuffle_buffer: int = 512, flip: bool = True,
                  seed: int | None = None, deterministic: bool | None = None,
                  repeat: bool = False, drop_remainder: bool = False,
                  guidance: str = "continuous", cache: bool = False):
    """Batches of ``(image, guidance)`` for training (see the module docstring).

    Args:
        data_dir: a ``build-sam`` output folder.
        split: ``"train"`` (default) or ``"test"``.
        batch_size: images per batch.
        size: (width, height) to deliver; None keeps the stored size.
        shuffle: shuffle shard order and records (buffer ``shuffle_buffer``).
        flip: random horizontal flip of the image and its guidance together.
        seed: seeds shuffling and flips; None draws fresh randomness each run.
        deterministic: keep element order fixed across parallel calls; default True when a
            seed is given, else False (faster).
        repeat: repeat forever (use ``steps_per_epoch`` in ``fit``).
        drop_remainder: drop a last, smaller batch.
        guidance: ``"continuous"``, ``"binary"`` (O_low's mask) or ``"mixed"`` (each
            example's binary map with probability 1/2, else its continuous one, so that G
            learns both kinds of guidance users give).
        cache: cache decoded records in memory (small datasets).

    Returns:
        A ``tf.data.Dataset`` of ``(image (B, H, W, 3), guidance (B, H, W, 1))`` float32.

    Example:
        >>> ds = train_dataset("data/sam", batch_size=4, seed=0)   # doctest: +SKIP
        >>> model.fit(ds, epochs=100)                              # doctest: +SKIP
    """
    if guidance not in GUIDANCE_KINDS:
        raise ConfigError(f"guidance must be one of {', '.join(GUIDANCE_KINDS)}, got {guidance!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    files = shard_files(data_dir, split)
    size = _resolve_size(data_dir, size)
    if deterministic is None:
        deterministic = seed is not None
    keys = {"continuous": ("guidance",), "binary": ("guidance_binary",),
            "mixed": ("guidance", "guidance_binary")}[guidance]
    decode = _decoder(size)
    flip_seed = 0 if seed is None else int(seed)
    fresh = seed is None

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if cache:
        ds = ds.cache()
    if repeat:
        ds = ds.repeat()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # One stateless flip draw per element, keyed on its position: reproducible under any
    # parallelism when seeded.
    ds = ds.enumerate()
    if fresh:
        base = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)

    def parse(index, serialized):
        rec = decode(serialized, keys)
        img, g = rec["image"], rec[keys[0]]
        s = tf.stack([tf.cast(flip_seed, tf.int64) + (base if fresh else 0), index])
        if len(keys) == 2:
            pick = tf.random.stateless_uniform([], seed=s + tf.constant([0, MIXED_PICK_SEED_OFFSET], tf.int64)) < 0.5
            g = tf.cond(pick, lambda: rec[keys[1]], lambda: g)
        if flip:
            do = tf.random.stateless_uniform([], seed=s) < 0.5
            img = tf.cond(do, lambda: tf.reverse(img, [1]), lambda: img)
            g = tf.cond(do, lambda: tf.reverse(g, [1]), lambda: g)
        return img, g

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return ds.with_options(options)


EVAL_KEYS = ("guidance", "guidance_binary", "mask_low", "mask_high", "saliency")


def eval_dataset(data_dir, split: str = "test", batch_size: int = 4, size=None,
                 deterministic: bool = True):
    """Batches of dicts for evaluation: images, both guiding maps, masks, E's map and ids.

    Args:
        data_dir: a ``build-sam`` output folder.
        split: ``"test"`` (default) or ``"train"``.
        batch_size: images per batch (the last batch may be smaller).
        size: (width, height) to deliver; None keeps the stored size.
        deterministic: keep the shard order (default).

    Returns:
        A ``tf.data.Dataset`` of dicts: ``image`` (B, H, W, 3), ``guidance``,
        ``guidance_binary``, ``mask_low``, ``mask_high``, ``saliency`` (B, H, W, 1), all
        float32 in [0, 1]; ``image_id``, ``low_ann_id``, ``high_ann_id`` int64 (B,).
    """
    files = shard_files(data_dir, split)
    size = _resolve_size(data_dir, size)
    decode = _decoder(size)
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8) if not deterministic else None)
    ds = ds.map(lambda s: decode(s, EVAL_KEYS), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return ds.with_options(options)
