"""Errors the serving client raises, one per gRPC status a caller should handle differently."""

from __future__ import annotations

from sagim_tf.utils.errors import InputError, SagimError


class ServingError(SagimError):
    """A Predict or GetModelMetadata call failed; ``code`` is the ``grpc.StatusCode``."""

    def __init__(self, message: str, code=None, details: str = ""):
        super().__init__(message)
        self.code = code
        self.details = details


class ServingUnavailableError(ServingError):
    """No server answers at the address (UNAVAILABLE): not started, wrong port, or down."""


class ServingInvalidArgumentError(ServingError, InputError):
    """The server rejected the request's inputs (INVALID_ARGUMENT); ``details`` says why."""


class ServingTimeoutError(ServingError):
    """The call did not finish within the client's timeout (DEADLINE_EXCEEDED)."""


class ServingNotFoundError(ServingError):
    """The server holds no such model name or version (NOT_FOUND)."""


class ServingBusyError(ServingError):
    """RESOURCE_EXHAUSTED: the server is busy (a large request already running, no slot
    before the deadline, too many queued RPCs) or the message is over gRPC's limit."""
