"""Exporting G for production: a SavedModel for TF Serving and TFLite files for devices.

TensorFlow-only code (see docs/architecture.md). Modules:

* :mod:`~sagim_tf.export.signatures` -- the one table of signatures (``serving_default``,
  ``edit_uint8``), their input/output keys, dtypes and ranges, which the serving client and
  server read too;
* :mod:`~sagim_tf.export.savedmodel` -- the TF Serving SavedModel with those signatures, in
  atomically written version directories, and TF Serving's ``models.config``;
* :mod:`~sagim_tf.export.tflite` -- float32, float16-weight and dynamic-range int8 TFLite
  files, dynamic-size and fixed-size, builtin ops only, and a runner on ``ai_edge_litert``.

G is loaded from a ``.keras`` file (a full SaGIM or a bare generator) by
:func:`sagim_tf.models.loading.load_generator`, re-exported here for convenience.
"""

from sagim_tf.export.savedmodel import (
    export_savedmodel,
    load_savedmodel,
    next_version,
    write_models_config,
)
from sagim_tf.export.signatures import (
    DEFAULT_SIGNATURE,
    GUIDANCE_KEY,
    IMAGE_KEY,
    OUTPUT_KEY,
    SIGNATURES,
    Signature,
    TensorKey,
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
    "DEFAULT_SIGNATURE",
    "ExportError",
    "GUIDANCE_KEY",
    "IMAGE_KEY",
    "OUTPUT_KEY",
    "SIGNATURES",
    "Signature",
    "TFLITE_FORMATS",
    "TFLiteRunner",
    "TensorKey",
    "convert_to_tflite",
    "export_savedmodel",
    "export_tflite",
    "load_generator",
    "load_savedmodel",
    "next_version",
    "write_models_config",
]
