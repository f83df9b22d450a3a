"""The registry of pseudo-label methods: lookup by name without importing the methods' code.

Every module of :mod:`bbam_lite.pseudo.methods` registers its methods with :func:`register`; they
are imported on the first lookup. Settings and the labels folder look methods up here, so they do
not depend on the method modules (which depend on them).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bbam_lite.pseudo.methods.base import Method

_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make the method available under ``cls.name``."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"pseudo-label method {cls.name!r} registered twice")
    cls.check_options()
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        package = importlib.import_module("bbam_lite.pseudo.methods")
        for mod in pkgutil.iter_modules(package.__path__):
            if mod.name != "base":
                importlib.import_module(f"bbam_lite.pseudo.methods.{mod.name}")


def methods() -> list[Method]:
    """Every registered method, in display order."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name))


def method_names() -> tuple[str, ...]:
    return tuple(m.name for m in methods())


def get_method(name: str) -> Method:
    """The registered method called ``name``; one-line error naming the choices otherwise."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown pseudo-label method {name!r}; choose one of {', '.join(method_names())}")
    return _REGISTRY[name]
