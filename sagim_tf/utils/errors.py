"""Errors the package raises for bad input, with messages that name the problem."""


class SagimError(ValueError):
    """Base class: bad input or configuration, reported to the user without a traceback."""


class InputError(SagimError):
    """An image, map or file is missing, corrupt, of the wrong shape, or out of range."""


class ConfigError(SagimError):
    """An unknown option, a wrong type, or an inconsistent configuration."""


class ExportError(SagimError):
    """A model cannot be exported as asked (e.g. an op that TFLite has no builtin kernel for)."""


class Preempted(Exception):
    """Training stopped on SIGTERM after writing its checkpoint; the same command resumes.

    Not a :class:`SagimError`: nothing was wrong with the input. The CLI exits 143
    (128 + SIGTERM), as a process killed by the signal would. ``summary`` holds what
    ``run_training`` would have returned (the model object left out).
    """

    #: The exit status of a process ended by SIGTERM.
    EXIT_CODE = 143

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary or {}
