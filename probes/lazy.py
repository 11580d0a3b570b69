"""A package whose names are imported from its submodules on first use (a module ``__getattr__``).

The package lists which submodule defines each name and imports them only for the type checker;
``__getattr__ = lazy_names(__name__, DEFINED_IN)`` then loads a submodule when one of its names is
first read, so a command that needs one submodule of a package does not pay for the others.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, defined_in: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: each name of ``defined_in`` from its submodule
    (kept in the package once read), any other an ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        module = defined_in.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
