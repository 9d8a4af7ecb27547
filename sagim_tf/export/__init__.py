"""Exporting G for production: a SavedModel for TF Serving and TFLite files for devices.

TensorFlow-only code (see docs/architecture.md). Modules:

* :mod:`~sagim_tf.export.signatures` -- the one table of signatures (``serving_default``,
  ``edit_uint8``; ``fields`` for an operator-head G; ``edit_masks`` with an estimator),
  their input/output keys, dtypes and ranges, which the serving client and server read too;
* :mod:`~sagim_tf.export.savedmodel` -- the TF Serving SavedModel with those signatures, in
  atomically written version directories, and TF Serving's ``models.config``;
* :mod:`~sagim_tf.export.guidance_graph` -- the ``edit_masks`` body: E, the guidance rule
  of :func:`sagim_tf.guidance.guidance_from_boxes` and the edit, in TensorFlow ops;
* :mod:`~sagim_tf.export.tflite` -- float32, float16-weight and dynamic-range int8 TFLite
  files (G, and an operator-head G's fields), dynamic-size and fixed-size, builtin ops only,
  and a runner on ``ai_edge_litert``;
* :mod:`~sagim_tf.export.parity` -- each written file checked against Keras;
* :mod:`~sagim_tf.export.loading` -- G and E of a ``.keras`` file for ``sagim export``.

G is loaded from a ``.keras`` file (a full SaGIM or a bare generator) by
:func:`sagim_tf.models.loading.load_generator`, re-exported here for convenience.
"""

from sagim_tf.export.savedmodel import (
    export_savedmodel,
    load_savedmodel,
    model_signatures,
    next_version,
    write_models_config,
)
from sagim_tf.export.signatures import (
    DEEMPHASIZE_KEY,
    DEFAULT_SIGNATURE,
    EDIT_MASKS_SIGNATURE,
    EMPHASIZE_KEY,
    FIELDS_KEY,
    FIELDS_SIGNATURE,
    GUIDANCE_KEY,
    IMAGE_KEY,
    OUTPUT_KEY,
    REQUIRED_SIGNATURES,
    SIGNATURES,
    STRENGTH_KEY,
    Signature,
    TensorKey,
    signatures_for,
)
from sagim_tf.export.tflite import (
    TFLITE_FORMATS,
    TFLiteRunner,
    convert_to_tflite,
    export_tflite,
)
from sagim_tf.models.loading import load_generator
from sagim_tf.utils.errors import ExportError

__all__ = [
    "DEEMPHASIZE_KEY",
    "DEFAULT_SIGNATURE",
    "EDIT_MASKS_SIGNATURE",
    "EMPHASIZE_KEY",
    "ExportError",
    "FIELDS_KEY",
    "FIELDS_SIGNATURE",
    "GUIDANCE_KEY",
    "IMAGE_KEY",
    "OUTPUT_KEY",
    "REQUIRED_SIGNATURES",
    "SIGNATURES",
    "STRENGTH_KEY",
    "Signature",
    "TFLITE_FORMATS",
    "TFLiteRunner",
    "TensorKey",
    "convert_to_tflite",
    "export_savedmodel",
    "export_tflite",
    "load_generator",
    "load_savedmodel",
    "model_signatures",
    "next_version",
    "signatures_for",
    "write_models_config",
]
