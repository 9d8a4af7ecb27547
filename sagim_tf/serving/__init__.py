"""Serving SaGIM over gRPC: a client for TF Serving's PredictionService and our own server.

TensorFlow-only code (see docs/architecture.md); needs ``grpcio`` and
``tensorflow-serving-api``. :class:`SagimServingClient` talks to the official
``tensorflow_model_server`` and to :class:`SagimServer` (``sagim serve``) alike; both read
the signature table of :mod:`sagim_tf.export.signatures`. Modules:

* :mod:`~sagim_tf.serving.client` -- the client;
* :mod:`~sagim_tf.serving.server` -- the server (``sagim serve``);
* :mod:`~sagim_tf.serving.tensors` -- NumPy arrays to and from ``TensorProto``;
* :mod:`~sagim_tf.serving.options` -- the gRPC options both ends use, the server's defaults;
* :mod:`~sagim_tf.serving.errors` -- one error class per gRPC status a caller handles.
"""

from sagim_tf.utils.extras import missing_extra

try:  # the `serving` extra; say how to install it rather than fail on a bare import
    import grpc  # noqa: F401
    import tensorflow_serving  # noqa: F401
except ModuleNotFoundError as exc:
    raise missing_extra(exc, "sagim_tf.serving", "serving") from exc

from sagim_tf.serving.client import SagimServingClient  # noqa: E402
from sagim_tf.serving.errors import (  # noqa: E402
    ServingBusyError,
    ServingError,
    ServingInvalidArgumentError,
    ServingNotFoundError,
    ServingTimeoutError,
    ServingUnavailableError,
)
from sagim_tf.serving.server import SagimPredictionServicer, SagimServer  # noqa: E402

__all__ = [
    "SagimPredictionServicer",
    "SagimServer",
    "SagimServingClient",
    "ServingBusyError",
    "ServingError",
    "ServingInvalidArgumentError",
    "ServingNotFoundError",
    "ServingTimeoutError",
    "ServingUnavailableError",
]
