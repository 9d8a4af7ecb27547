"""Errors the package raises for bad input, with messages that name the problem."""


class SagimError(ValueError):
    """Base class: bad input or configuration, reported to the user without a traceback."""


class InputError(SagimError):
    """An image, map or file is missing, corrupt, of the wrong shape, or out of range."""


class ConfigError(SagimError):
    """An unknown option, a wrong type, or an inconsistent configuration."""


class ExportError(SagimError):
    """A model cannot be exported as asked (e.g. an op that TFLite has no builtin kernel for)."""
