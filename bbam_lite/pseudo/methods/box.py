"""Box: every pixel of the box is foreground (the papers' weakest baseline)."""

from __future__ import annotations

import numpy as np

from bbam_lite.pseudo.labels import InstanceLabel, box_region
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register


def box_instances(boxes: np.ndarray, labels: np.ndarray, height: int, width: int) -> list[InstanceLabel]:
    """Every pixel of each box is its foreground."""
    return [
        InstanceLabel(int(c), b.copy(), box_region(b, height, width), np.zeros((height, width), bool))
        for b, c in zip(boxes, labels, strict=True)
    ]


@register
class Box(Method):
    name = "box"
    box_noise = {
        "contracted": "a contracted box first trims the clean box's background corners, then the "
        "object (exercise 8.2)"
    }
    title = "Box"
    summary = "the filled box (Box2Seg's and BBAM's Box row)"
    colour = "tab:gray"
    order = 10

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        return box_instances(item.boxes, item.labels, *item.shape)
