"""Packages whose public names are imported on first use (so that importing them is quick)."""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, names: dict):
    """``__getattr__`` and ``__dir__`` for a package that loads ``names`` lazily.

    Args:
        package: str. The package's ``__name__``.
        names: dict. Public name -> the module that defines it.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's top level.
    """

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
