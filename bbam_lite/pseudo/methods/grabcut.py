"""GrabCut as in Box2Seg's Algorithm 1: an initial mask of probable and certain foreground inside the
box, five GrabCut iterations, the box's border rows and columns background."""

from __future__ import annotations

import cv2
import numpy as np

from bbam_lite.pseudo.labels import InstanceLabel
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register


def grabcut_init_mask(
    box: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Algorithm 1's initial mask: 0 outside the box, 2 (probable background) on the box, 3
    (probable foreground) on its inner 10%-90%, 1 (foreground) on its inner 25%-75%."""
    x = int(np.floor(box[0]))
    y = int(np.floor(box[1]))
    w = int(np.ceil(box[2])) - x
    h = int(np.ceil(box[3])) - y
    mask = np.zeros((height, width), np.uint8)
    mask[y : y + h, x : x + w] = cv2.GC_PR_BGD
    mask[y + int(h / 10) : y + int(9 * h / 10), x + int(w / 10) : x + int(9 * w / 10)] = cv2.GC_PR_FGD
    mask[y + int(h / 4) : y + int(3 * h / 4), x + int(w / 4) : x + int(3 * w / 4)] = cv2.GC_FGD
    return mask, (x, y, w, h)


def grabcut_box(image: np.ndarray, box: np.ndarray, iterations: int = 5) -> tuple[np.ndarray, bool]:
    """GrabCut on one box as in Algorithm 1; returns (foreground, ran). When GrabCut cannot run (the
    box covers the whole image, so there is no background sample), the initial foreground
    (labels 1 and 3) is returned and ``ran`` is False."""
    h_img, w_img = image.shape[:2]
    mask, (x, y, w, h) = grabcut_init_mask(box, h_img, w_img)
    ran = True
    try:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's global RNG: fix it per box
        cv2.grabCut(
            np.ascontiguousarray(image[..., :3]), mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK
        )
    except cv2.error:
        ran = False
    fg = np.where((mask == cv2.GC_PR_BGD) | (mask == cv2.GC_BGD), 0, 1).astype(bool)
    # the box's border rows and columns are background
    for r in (y, y + h):
        if 0 <= r < h_img:
            fg[r, :] = False
    for col in (x, x + w):
        if 0 <= col < w_img:
            fg[:, col] = False
    return fg, ran


def grabcut_instances(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> list[InstanceLabel]:
    """GrabCut per box (Algorithm 1); ``info["grabcut_ran"]`` says whether it could run."""
    h, w = image.shape[:2]
    out = []
    for b, c in zip(boxes, labels, strict=True):
        fg, ran = grabcut_box(image, b)
        out.append(InstanceLabel(int(c), b.copy(), fg, np.zeros((h, w), bool), info={"grabcut_ran": ran}))
    return out


@register
class GrabCut(Method):
    name = "grabcut"
    box_noise = {
        "contracted": "it keeps the object inside its definite-foreground core",
        "expanded": "it gains colour statistics from the extra background while the object stays "
        "inside its definite-foreground core",
    }
    memory_per_pixel = 215.0  # scripts/bench_memory.py, lite, 2026-12-04
    title = "GrabCut"
    summary = "GrabCut per box as in Box2Seg's Algorithm 1"
    colour = "tab:red"
    order = 30
    #: Box2Seg Table 1 (VOC 2012 val mIoU): DeepLab trained on GrabCut labels, and the labels
    #: themselves scored from ground-truth and from detected boxes (NoTrain-GT / -Det)
    paper = {
        "grabcut": {"miou": 72.7},
        "grabcut_notrain_gt": {"miou": 71.6},
        "grabcut_notrain_det": {"miou": 68.5},
    }

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        return grabcut_instances(item.image, item.boxes, item.labels)
