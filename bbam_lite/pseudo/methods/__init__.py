"""The registry of pseudo-label methods: every module of this package registers its methods.

Adding a method is adding a module here (see :mod:`bbam_lite.pseudo.methods.base` for the protocol
and ``docs/architecture.md``); nothing outside this package branches on a method's name.
"""

from __future__ import annotations

from bbam_lite.pseudo.methods.base import (
    ImageBoxes,
    LabelContext,
    LabelVariant,
    Method,
)
from bbam_lite.pseudo.registry import get_method, method_names, methods, register

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
