"""The registry of pseudo-label methods: every module of this package registers its methods.

Adding a method is adding a module here (see :mod:`bbam_lite.pseudo.methods.base` for the protocol
and ``docs/architecture.md``); nothing outside this package branches on a method's name.
"""

from __future__ import annotations

import importlib
import pkgutil

from bbam_lite.pseudo.methods.base import (
    _REGISTRY,
    ImageBoxes,
    LabelContext,
    LabelVariant,
    Method,
    register,
)

__all__ = [
    "ImageBoxes",
    "LabelContext",
    "LabelVariant",
    "Method",
    "get_method",
    "method_names",
    "methods",
    "register",
    "variants",
]

_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base":
                importlib.import_module(f"{__name__}.{mod.name}")


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


def variants() -> dict[str, LabelVariant]:
    """Every method's named variants (name -> variant), in display order."""
    return {v.name: v for m in methods() for v in m.label_variants()}


def titles() -> dict[str, str]:
    """Title of every method and variant, for tables and figures."""
    return {**{m.name: m.title for m in methods()}, **{v.name: v.title for v in variants().values()}}


def colours() -> dict[str, str]:
    """Colour of every method and variant, for figures."""
    return {**{m.name: m.colour for m in methods()}, **{v.name: v.colour for v in variants().values()}}


def paper_numbers() -> dict[str, dict[str, float]]:
    """The papers' VOC 2012 val numbers of the methods' variants (percent), by variant name."""
    return {k: v for m in methods() for k, v in m.paper.items()}
