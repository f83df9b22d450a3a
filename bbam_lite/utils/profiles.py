"""One vocabulary of profile names: a name means the same scale on every command.

``smoke`` (tests, seconds), ``lite`` (scaled to the synthetic set, CPU) and the paper's scale,
which detectors and segmentation networks call ``paper`` and labels and notebooks ``full``
(the name stored in their folders' settings). Each of the two is accepted wherever the other is.
"""

from __future__ import annotations

from collections.abc import Iterable

SAME_SCALE = {"paper": "full", "full": "paper"}


def profile_name(name: str, known: Iterable[str]) -> str:
    """``name`` as spelled among ``known`` (a command's profiles): ``paper`` where only ``full``
    is known and vice versa; any other name unchanged (the caller refuses an unknown one)."""
    known = set(known)
    if name in known or SAME_SCALE.get(name) not in known:
        return name
    return SAME_SCALE[name]
