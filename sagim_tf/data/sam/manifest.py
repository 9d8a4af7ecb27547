"""The ``manifest.json`` of a SAM build: what was built, from what, and the counts.

The manifest is written last, atomically, so a folder with one is a finished build; its
``fingerprint`` (format version, build config, estimator spec, annotation files and the
selected ids' hash) is what a re-run compares to decide whether the build is its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from sagim_tf.data.tfrecords import FORMAT_VERSION, MAP_KEYS
from sagim_tf.utils.errors import InputError
from sagim_tf.utils.io import write_json

MANIFEST = "manifest.json"

#: Why an image selected for a split has no record: its file is missing, it cannot be
#: decoded, fewer than two object masks survive the resize, or no guidance draw raised O_low.
SKIP_REASONS = ("missing", "corrupt", "degenerate", "guidance")


def empty_skips() -> dict[str, list[int]]:
    """``{reason: []}`` for every reason in :data:`SKIP_REASONS`."""
    return {reason: [] for reason in SKIP_REASONS}


def make_manifest(
    *,
    fingerprint: Mapping,
    config,
    estimator_spec: str,
    annotations: Sequence,
    n_images: int,
    n_selected: int,
    n_train: int,
    n_test: int,
    shard_infos: Sequence[Mapping],
) -> dict:
    """The manifest of a finished build.

    Args:
        fingerprint: the build's fingerprint (see the module docstring).
        config: the :class:`~sagim_tf.data.sam.builder.BuildConfig`.
        estimator_spec: the estimator's spec, as recorded.
        annotations: the annotation files (their base names are recorded).
        n_images: images in the annotation files.
        n_selected: images that satisfy the selection rule.
        n_train: images assigned to the train split.
        n_test: images assigned to the test split.
        shard_infos: one dict per shard, from
            :func:`sagim_tf.data.sam.shards.build_shard`, in file order.

    Returns:
        The manifest as a JSON-ready dict.
    """
    skipped = empty_skips()
    for info in shard_infos:
        for reason, ids in info["skipped"].items():
            skipped[reason].extend(ids)
    counts = {
        "images_in_annotations": n_images,
        "selected": n_selected,
        "requested": {"train": config.train, "test": config.test},
        "assigned": {"train": n_train, "test": n_test},
        "train": sum(i["records"] for i in shard_infos if i["split"] == "train"),
        "test": sum(i["records"] for i in shard_infos if i["split"] == "test"),
        "skipped": {reason: len(ids) for reason, ids in skipped.items()},
        "flipped": sum(i["flipped"] for i in shard_infos),
    }
    return {
        "format_version": FORMAT_VERSION,
        "dataset": "SAM (SAliency Manipulation), sagim_tf",
        "estimator": estimator_spec,
        "seed": config.seed,
        "size": list(config.size),
        "config": config.to_dict(),
        "annotations": [os.path.basename(os.fspath(a)) for a in annotations],
        "counts": counts,
        "skipped_ids": {reason: sorted(ids) for reason, ids in skipped.items()},
        "shards": [
            {"file": i["file"], "split": i["split"], "records": i["records"], "sha256": i["sha256"]}
            for i in shard_infos
        ],
        "features": {"maps": list(MAP_KEYS), "image_format": config.image_format},
        "fingerprint": dict(fingerprint),
    }


def write_manifest(out, manifest: Mapping) -> str:
    """Write ``manifest`` to ``out/manifest.json`` atomically; returns the path."""
    return write_json(os.path.join(os.fspath(out), MANIFEST), manifest, indent=2, sort_keys=True)


def read_manifest(data_dir) -> dict:
    """The ``manifest.json`` of a built SAM folder (checked for the format version).

    Raises:
        InputError: no manifest (not a finished build) or another format version.
    """
    path = os.path.join(os.fspath(data_dir), MANIFEST)
    if not os.path.isfile(path):
        raise InputError(f"{data_dir}: no {MANIFEST}; is this a finished build-sam output?")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: format version {manifest.get('format_version')} is not "
            f"the supported {FORMAT_VERSION}; rebuild the dataset"
        )
    return manifest
