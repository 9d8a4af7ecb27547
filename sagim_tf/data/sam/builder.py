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
:mod:`sagim_tf.data.tfrecords`) and ``OUT/manifest.json``. Writing and resuming shards is
in :mod:`sagim_tf.data.sam.shards`, the manifest in :mod:`sagim_tf.data.sam.manifest`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from sagim_tf.data.sam import shards
from sagim_tf.data.sam.manifest import MANIFEST, make_manifest, write_manifest
from sagim_tf.data.selection import SelectionRule, select_images
from sagim_tf.data.tfrecords import FORMAT_VERSION
from sagim_tf.estimators import build_estimator
from sagim_tf.guidance import GuidanceConfig
from sagim_tf.utils.errors import ConfigError, InputError
from sagim_tf.utils.extras import missing_extra
from sagim_tf.utils.io import write_json

logger = logging.getLogger(__name__)

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
    try:  # lazy: pycocotools is the optional `coco` extra; BuildConfig imports without it
        from pycocotools.coco import COCO
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, "sagim build-sam", "coco") from exc

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
        return build_estimator(estimator), estimator
    if callable(estimator):
        name = spec or getattr(estimator, "spec", None)
        if not name:
            name = f"python:{type(estimator).__module__}.{type(estimator).__qualname__}"
        return estimator, name
    raise ConfigError(f"estimator must be a spec string or a callable, got {type(estimator).__name__}")


def _fingerprint(config: BuildConfig, spec: str, annotations, ids: np.ndarray) -> dict:
    """What decides a build's bytes; a re-run resumes or skips only a build with the same."""
    return {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "estimator": spec,
        "annotations": [os.path.basename(os.fspath(a)) for a in annotations],
        "selected_sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
    }


def _prepare_out(out: str, fingerprint: dict, overwrite: bool) -> dict | None:
    """Make ``out`` ready for this build; return its manifest if the build is already done.

    A finished or partial build of another configuration, or TFRecord files from elsewhere,
    are a ConfigError unless ``overwrite`` (then they are removed).
    """
    os.makedirs(out, exist_ok=True)
    manifest_path = os.path.join(out, MANIFEST)
    fp_path = os.path.join(out, shards.PROGRESS_DIR, "fingerprint.json")
    if os.path.isfile(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("fingerprint") == fingerprint:
            return old
        if not overwrite:
            raise ConfigError(f"{out} holds a finished build of another configuration; "
                              "choose another --out or pass --overwrite")
        shards.clear_build(out)
    elif os.path.isfile(fp_path):
        with open(fp_path, encoding="utf-8") as f:
            old_fp = json.load(f)
        if old_fp != fingerprint:
            if not overwrite:
                raise ConfigError(f"{out} holds a partial build of another configuration; "
                                  "choose another --out or pass --overwrite")
            shards.clear_build(out)
    elif glob.glob(os.path.join(out, "*.tfrecord")):
        if not overwrite:
            raise ConfigError(f"{out} already holds TFRecord files from elsewhere; "
                              "choose another --out or pass --overwrite")
        shards.clear_build(out)
    shards.remove_stale(out)
    write_json(fp_path, fingerprint, sort_keys=True)
    return None


def build_sam(images, annotations, out, estimator, config: BuildConfig = BuildConfig(),
              estimator_spec: str | None = None, overwrite: bool = False,
              progress: bool = True, log=None) -> dict:
    """Build SAM under ``out``; returns the manifest (also written to ``out/manifest.json``).

    Args:
        images: str or list. A folder, or folders searched in order, holding the images the
            annotation files name (for COCO 2017: ``train2017`` and ``val2017``).
        annotations: str or list. One or more COCO instances JSON files.
        out: str. The output folder.
        estimator: str or callable. A spec for :func:`sagim_tf.estimators.build_estimator`
            (e.g. ``"itti-koch"``, ``"salgan:PATH"``), or an estimator already built: any
            callable mapping float32 images (B, H, W, 3) in [0, 1] to maps (B, H, W, 1) in
            [0, 1].
        config: :class:`BuildConfig`. Defaults to ``BuildConfig()`` (the paper's sizes).
        estimator_spec: str. The name recorded in the manifest for a callable estimator.
            Defaults to its ``spec`` attribute, else its class path.
        overwrite: bool. Replace a finished or partial build made with another
            configuration. Defaults to ``False``.
        progress: bool. Show a tqdm progress bar. Defaults to ``True``.
        log: callable. Called with each message line. Defaults to this module's logger
            (INFO).

    Raises:
        InputError: a missing annotation file or image folder, unknown ids, or no image
            selected.
        ConfigError: bad options, or ``out`` holds another configuration's build.
    """
    say = log if log is not None else logger.info
    out = os.fspath(out)
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

    # 1-2. Load, check, select.
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

    # 3. Split.
    ids = np.array(sorted(selected), dtype=np.int64)
    order = ids[np.random.default_rng(config.seed).permutation(len(ids))]
    n_train, n_test = split_counts(len(ids), config.train, config.test)
    if n_train + n_test < config.train + config.test:
        say(f"only {len(ids)} images satisfy the selection rule, fewer than the "
            f"{config.train} + {config.test} asked; using {n_train} train + {n_test} test")
    splits = {"train": [int(v) for v in order[:n_train]],
              "test": [int(v) for v in order[n_train:n_train + n_test]]}

    est, spec = _resolve_estimator(estimator, estimator_spec)
    fingerprint = _fingerprint(config, spec, annotations, ids)
    done = _prepare_out(out, fingerprint, overwrite)
    if done is not None:
        say(f"{out} already holds this build (manifest.json); nothing to do")
        return done

    # 4-5. Shards, each kept if a previous run finished it.
    plan = shards.plan_shards(splits, config.shard_size)
    shard_infos = []
    bar = tqdm(total=sum(len(p.ids) for p in plan), desc="build-sam", unit="img",
               disable=not progress)
    sources = shards.ShardSources(out=out, estimator=est, cocos=cocos, owner=owner,
                                  candidates=selected, image_dirs=image_dirs, config=config,
                                  on_image=bar.update, say=say)
    try:
        for shard in plan:
            info = shards.finished_shard(out, shard.name)
            if info is not None:
                bar.update(len(shard.ids))
            else:
                info = shards.build_shard(shard, sources)
                shards.record_progress(out, info)
            shard_infos.append(info)
    finally:
        bar.close()

    manifest = make_manifest(fingerprint=fingerprint, config=config, estimator_spec=spec,
                             annotations=annotations, n_images=len(owner), n_selected=len(ids),
                             n_train=n_train, n_test=n_test, shard_infos=shard_infos)
    write_manifest(out, manifest)
    shutil.rmtree(os.path.join(out, shards.PROGRESS_DIR), ignore_errors=True)
    say(f"wrote {manifest['counts']['train']} train + {manifest['counts']['test']} test records "
        f"to {out} ({sum(manifest['counts']['skipped'].values())} skipped)")
    return manifest
