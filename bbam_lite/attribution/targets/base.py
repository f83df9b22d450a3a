"""What a head target is: a small callable on the heads' outputs for one object's positives.

A target compares the outputs on the perturbed image with those on the clean image, row by row
(one row per positive proposal), and returns one value per row: L_box(o) or L_cls(o) of Eq. 5.
:mod:`bbam_lite.attribution.loss` averages the rows per object and weights the terms; a target
only says what one row costs. Register one with :func:`register` in a module of this package
(it is discovered; ``BBAMConfig.box_loss`` / ``cls_loss`` name it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

HEADS = ("box", "cls")


@dataclass(frozen=True)
class HeadRows:
    """The heads' outputs for N positive proposals: ``deltas`` (N, 4), already taken at each row's
    class; ``probs`` (N, C+1), all classes; ``labels`` each row's class (N,), or one for all rows."""

    deltas: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor | int


class HeadTarget:
    """One term of Eq. 5 per positive: ``target(out, clean)`` -> (N,) values (differentiable in
    ``out``). Subclasses set ``name`` (the config value) and ``head`` (``"box"`` or ``"cls"``)."""

    name: ClassVar[str]
    head: ClassVar[str]
    summary: ClassVar[str] = ""

    def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
        raise NotImplementedError


#: (head, name) -> the target; filled by :func:`register` as the package's modules load.
REGISTRY: dict[tuple[str, str], HeadTarget] = {}


def register(cls: type[HeadTarget]) -> type[HeadTarget]:
    """Class decorator: make ``cls`` the target named ``cls.name`` for its ``cls.head``."""
    if cls.head not in HEADS:
        raise ValueError(f"{cls.__name__}.head must be one of {HEADS}, got {cls.head!r}")
    key = (cls.head, cls.name)
    old = REGISTRY.get(key)
    same = old is not None and (type(old).__module__, type(old).__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if old is not None and not same:  # a module imported twice re-registers its own class
        raise ValueError(f"a {cls.head} target named {cls.name!r} is already registered")
    REGISTRY[key] = cls()
    return cls
