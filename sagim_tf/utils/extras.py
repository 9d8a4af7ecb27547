"""Optional dependencies: one message for a feature whose extra is not installed."""

from __future__ import annotations


def missing_extra(exc: ModuleNotFoundError, what: str, extra: str) -> ModuleNotFoundError:
    """The error to raise when ``what`` cannot import a package of the ``extra`` extra.

    Use as ``except ModuleNotFoundError as exc: raise missing_extra(exc, ...) from exc``;
    the message names the missing module and the pip command that installs it.
    """
    return ModuleNotFoundError(
        f'{what} needs {exc.name!r}, from the {extra} extra: pip install "sagim-tf[{extra}]"',
        name=exc.name,
    )
