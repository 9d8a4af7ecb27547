"""Exporting G for production: a SavedModel for TF Serving and TFLite files for devices.

TensorFlow-only code (see docs/architecture.md). Modules:

* :mod:`~sagim_tf.models.loading` -- load G from a ``.keras`` file (a full SaGIM or a
  bare generator);
* :mod:`~sagim_tf.export.savedmodel` -- the TF Serving SavedModel with the named signatures
  ``serving_default`` and ``edit_uint8``;
* :mod:`~sagim_tf.export.tflite` -- float32, float16-weight and dynamic-range int8 TFLite
  files, dynamic-size and fixed-size, builtin ops only, and a runner on ``ai_edge_litert``.
"""

from sagim_tf.utils.errors import ExportError
from sagim_tf.models.loading import load_generator
from sagim_tf.export.savedmodel import (
    SIGNATURES,
    export_savedmodel,
    load_savedmodel,
    next_version,
    write_models_config,
)
from sagim_tf.export.tflite import (
    TFLITE_FORMATS,
    TFLiteRunner,
    convert_to_tflite,
    export_tflite,
)

__all__ = [
    "ExportError",
    "SIGNATURES",
    "TFLITE_FORMATS",
    "TFLiteRunner",
    "convert_to_tflite",
    "export_savedmodel",
    "export_tflite",
    "load_generator",
    "load_savedmodel",
    "next_version",
    "write_models_config",
]
