"""Serving SaGIM over gRPC: a client for TF Serving's PredictionService and our own server.

TensorFlow-only code (see docs/architecture.md); needs ``grpcio`` and
``tensorflow-serving-api``. :class:`SagimServingClient` talks to the official
``tensorflow_model_server`` and to :class:`SagimServer` (``sagim serve``) alike; both read
the signature table of :mod:`sagim_tf.export.signatures`. Modules:

* :mod:`~sagim_tf.serving.client` -- the client;
* :mod:`~sagim_tf.serving.server` -- the server (``sagim serve``);
* :mod:`~sagim_tf.serving.tensors` -- NumPy arrays to and from ``TensorProto``;
* :mod:`~sagim_tf.serving.options` -- the gRPC message-size options both ends use;
* :mod:`~sagim_tf.serving.errors` -- one error class per gRPC status a caller handles.
"""

from sagim_tf.serving.client import SagimServingClient
from sagim_tf.serving.errors import (
    ServingError,
    ServingInvalidArgumentError,
    ServingNotFoundError,
    ServingTimeoutError,
    ServingUnavailableError,
)
from sagim_tf.serving.server import SagimPredictionServicer, SagimServer

__all__ = [
    "SagimPredictionServicer",
    "SagimServer",
    "SagimServingClient",
    "ServingError",
    "ServingInvalidArgumentError",
    "ServingNotFoundError",
    "ServingTimeoutError",
    "ServingUnavailableError",
]
