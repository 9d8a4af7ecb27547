"""Serving SaGIM over gRPC: a client for TF Serving's PredictionService and our own server.

TensorFlow-only code (see docs/architecture.md). :class:`SagimServingClient` talks to the official
``tensorflow_model_server`` and to :class:`SagimServer` (``sagim serve``) alike.
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
