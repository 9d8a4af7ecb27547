"""The SAM dataset: synthetic COCO scenes, the builder, its TFRecords and the tf.data input.

- :func:`generate_synthetic_coco`: a COCO-format dataset of synthetic scenes.
- :func:`build_sam`, :class:`BuildConfig`: SAM from COCO annotations (paper §4.1).
- :class:`SelectionRule`, :class:`GuidanceConfig`, :func:`make_guidance`: its parts.
- :func:`train_dataset`, :func:`eval_dataset`: tf.data views of a built SAM folder.
- :func:`read_manifest`, :func:`read_records`, :data:`FORMAT_VERSION`.

The builder lives in :mod:`sagim_tf.data.sam`: ``builder`` (:func:`build_sam`), ``shards``
(writing and resuming shards) and ``manifest`` (the manifest and its counts).

Names are imported lazily, so importing this package does not import TensorFlow.
"""

from __future__ import annotations

from sagim_tf.utils.lazy import lazy_exports

#: Which guiding map a training example carries: SAM's continuous map, the binary mask of
#: O_low, or a seeded per-example pick of the two.
GUIDANCE_KINDS = ("continuous", "binary", "mixed")

_LAZY = {
    "generate_synthetic_coco": "sagim_tf.data.synth_coco",
    "SelectionRule": "sagim_tf.data.selection",
    "select_images": "sagim_tf.data.selection",
    "GuidanceConfig": "sagim_tf.guidance",
    "make_guidance": "sagim_tf.guidance",
    "BuildConfig": "sagim_tf.data.sam.builder",
    "build_sam": "sagim_tf.data.sam.builder",
    "read_manifest": "sagim_tf.data.sam.manifest",
    "split_counts": "sagim_tf.data.sam.builder",
    "FORMAT_VERSION": "sagim_tf.data.tfrecords",
    "read_records": "sagim_tf.data.tfrecords",
    "train_dataset": "sagim_tf.data.pipeline",
    "eval_dataset": "sagim_tf.data.pipeline",
    "shard_files": "sagim_tf.data.pipeline",
    "split_size": "sagim_tf.data.pipeline",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = sorted(_LAZY)
