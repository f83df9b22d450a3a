"""Head targets of Eq. 5 as callables, one module each (the pattern of pytorch-grad-cam's model
targets): ``get_target("box", "half-mean")(out, clean)`` gives each positive's box term.

A new target is one new module here with a :func:`register`-ed :class:`HeadTarget` subclass; its
``name`` becomes a valid ``BBAMConfig.box_loss`` / ``cls_loss`` value.
"""

from __future__ import annotations

import importlib
import pkgutil

from bbam_lite.attribution.targets.base import HEADS, REGISTRY, HeadRows, HeadTarget, register

__all__ = ["HEADS", "HeadRows", "HeadTarget", "get_target", "register", "target_names"]

_loaded = False


def _load() -> dict[tuple[str, str], HeadTarget]:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base":
                importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY


def target_names(head: str) -> tuple[str, ...]:
    """The registered targets of ``head`` (``"box"`` or ``"cls"``), in registration order."""
    return tuple(name for h, name in _load() if h == head)


def get_target(head: str, name: str) -> HeadTarget:
    """The target ``name`` of ``head``; ``ValueError`` naming the known ones otherwise."""
    target = _load().get((head, name))
    if target is None:
        raise ValueError(f"unknown {head} target {name!r}; known: {'|'.join(target_names(head))}")
    return target
