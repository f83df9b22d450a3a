"""Box baselines: filled boxes, a dense CRF on the box alone, and GrabCut as in Box2Seg's Algorithm 1."""

from __future__ import annotations

import cv2
import numpy as np

from bbam_lite.pseudo.crf import CRFParams, crf_foreground
from bbam_lite.pseudo.labels import InstanceLabel, box_region

#: Prior inside the box for Box + CRF (the calibration prototype's value); outside the box it is 0.
BOX_CRF_PRIOR = 0.6


def box_instances(boxes: np.ndarray, labels: np.ndarray, height: int, width: int) -> list[InstanceLabel]:
    """Box: every pixel of the box is foreground."""
    return [
        InstanceLabel(int(c), b.copy(), box_region(b, height, width), np.zeros((height, width), bool))
        for b, c in zip(boxes, labels, strict=True)
    ]


def box_crf_instances(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, crf: CRFParams, prior: float = BOX_CRF_PRIOR
) -> list[InstanceLabel]:
    """Box + CRF: the same dense CRF as BBAM's refinement, on a uniform prior inside the box;
    foreground where the refined marginal exceeds 0.5, restricted to the box."""
    h, w = image.shape[:2]
    out = []
    for b, c in zip(boxes, labels, strict=True):
        inside = box_region(b, h, w)
        q = crf_foreground(image, inside * np.float32(prior), crf)
        out.append(InstanceLabel(int(c), b.copy(), (q > 0.5) & inside, np.zeros((h, w), bool)))
    return out


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
    """GrabCut per box (Algorithm 1); compose with :func:`compose_overwrite` for its class map."""
    h, w = image.shape[:2]
    out = []
    for b, c in zip(boxes, labels, strict=True):
        fg, ran = grabcut_box(image, b)
        out.append(InstanceLabel(int(c), b.copy(), fg, np.zeros((h, w), bool), info={"grabcut_ran": ran}))
    return out
