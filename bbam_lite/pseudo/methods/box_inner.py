"""Box^i of Simple Does It (Khoreva et al., CVPR 2017): the box's central region is the object, the
rest of the box is unknown.

SDI fills each box with its class but keeps as foreground only a central rectangle of the box's
aspect ratio covering 20% of its area; the ring around it is ignored (255) by the segmentation
loss, since a box's border is mostly background and its centre mostly object. The BBAM paper
compares against SDI in its Tables 1 and 3.
"""

from __future__ import annotations

import math

import numpy as np

from bbam_lite.pseudo.labels import InstanceLabel, box_region
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register

#: The central region's share of the box's area (SDI: 20%).
INNER_AREA = 0.2


def inner_box(box: np.ndarray, area: float = INNER_AREA) -> np.ndarray:
    """The rectangle of ``box``'s centre and aspect ratio that covers ``area`` of it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) * math.sqrt(area) / 2, (y2 - y1) * math.sqrt(area) / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)


def box_inner_instances(
    boxes: np.ndarray, labels: np.ndarray, height: int, width: int
) -> list[InstanceLabel]:
    """Foreground: each box's central 20%; ignore: the rest of the box."""
    out = []
    for b, c in zip(boxes, labels, strict=True):
        fg = box_region(inner_box(b), height, width)
        out.append(InstanceLabel(int(c), b.copy(), fg, box_region(b, height, width) & ~fg))
    return out


@register
class BoxInner(Method):
    name = "box_inner"
    title = "Box^i (SDI)"
    summary = "Simple Does It's Box^i: the box's central 20% foreground, the rest of the box ignored"
    colour = "tab:olive"
    order = 15

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        return box_inner_instances(item.boxes, item.labels, *item.shape)
