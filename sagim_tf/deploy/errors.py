"""The error export raises when a model cannot be turned into a deployable file."""

from sagim_tf.errors import SagimError


class ExportError(SagimError):
    """A model cannot be exported as asked (e.g. an op that TFLite has no builtin kernel for)."""
