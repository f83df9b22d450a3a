"""bbam-lite: BBAM (Lee et al., CVPR 2021) and the box baselines, as a library and a book.

The public API (:mod:`bbam_lite.api`, ``docs/api.md``): :class:`BBAM`, :class:`Attribution`,
:func:`load_detector`, :func:`load_dataset`, :func:`pseudo_labels`. They are imported on first use,
so ``import bbam_lite`` (and the command line) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bbam_lite.api import BBAM, Attribution, load_dataset, load_detector, pseudo_labels

__all__ = ["BBAM", "Attribution", "load_dataset", "load_detector", "pseudo_labels"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bbam_lite import api

        return getattr(api, name)
    raise AttributeError(f"module 'bbam_lite' has no attribute {name!r}")
