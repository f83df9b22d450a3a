"""From attribution maps to pseudo labels: thresholds with an ignore band, CRF refinement, the
authors' area-quantile variant, and the instance -> semantic conversion.

An instance pseudo label is a foreground mask plus an ignore mask (pixels that the segmentation
network's loss should skip); everything else in the image is background for that instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from bbam_lite.pseudo.crf import CRFParams, crf_foreground

IGNORE = 255


@dataclass
class InstanceLabel:
    """One object's pseudo label."""

    label: int
    box: np.ndarray  # (4,) x1, y1, x2, y2
    fg: np.ndarray  # (H, W) bool
    ignore: np.ndarray  # (H, W) bool, disjoint from fg
    score: float = 1.0
    info: dict = field(default_factory=dict)


def box_region(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside ``box``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    return ((ys >= y1) & (ys <= y2))[:, None] & ((xs >= x1) & (xs <= x2))[None, :]


def threshold_map(
    prob: np.ndarray, theta_fg: float = 0.8, theta_bg: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground where prob > theta_fg; ignore where theta_bg <= prob <= theta_fg; the rest background."""
    if not 0 <= theta_bg <= theta_fg <= 1:
        raise ValueError(f"need 0 <= theta_bg <= theta_fg <= 1, got theta_bg={theta_bg}, theta_fg={theta_fg}")
    fg = prob > theta_fg
    ignore = (prob >= theta_bg) & ~fg if theta_bg < theta_fg else np.zeros_like(fg)
    return fg, ignore


def refine_paper(
    image: np.ndarray,
    bbam: np.ndarray,
    box: np.ndarray,
    crf: CRFParams | None,
    theta_fg: float = 0.8,
    theta_bg: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's recipe: BBAM restricted to its box, refined by a dense CRF, then theta_fg / theta_bg.

    Returns (fg, ignore, refined probability map). ``crf=None`` skips the CRF (for the ablation).
    """
    h, w = bbam.shape
    prob = np.where(box_region(box, h, w), bbam, 0.0).astype(np.float32)
    refined = crf_foreground(image, prob, crf) if crf is not None else prob
    refined = np.where(box_region(box, h, w), refined, 0.0)
    fg, ignore = threshold_map(refined, theta_fg, theta_bg)
    return fg, ignore, refined


def _quantile_saturate(bbam: np.ndarray, inside: np.ndarray, th: float) -> np.ndarray:
    """The authors' threshold: the value at rank box_area * (1 - th) (descending) inside the box
    becomes the saturation point; map / t, clipped to 1."""
    vals = np.sort(bbam[inside])[::-1]
    if vals.size == 0:
        return np.zeros_like(bbam)
    t = float(vals[min(int(vals.size * (1 - th)), vals.size - 1)])
    return np.clip(bbam / max(t, 1e-6), 0, 1) * inside


def _official_mask(
    image: np.ndarray,
    bbam: np.ndarray,
    inside: np.ndarray,
    th: float,
    stride: float,
    crf: CRFParams,
    keep: float = 0.9,
) -> tuple[np.ndarray, bool]:
    sat = _quantile_saturate(bbam, inside, th).astype(np.float32)
    k = max(int(round(stride)) | 1, 1)  # odd kernel = stride
    blurred = cv2.GaussianBlur(sat, (k, k), 0) * inside
    mask = crf_foreground(image, blurred, crf) > keep
    mask &= inside
    area, box_area = mask.sum(), inside.sum()
    small_box = box_area < 0.1 * inside.size
    used_fallback = False
    if small_box and area < box_area / 5:
        used_fallback = True
        for p in (0.5, 0.6, 0.7, 0.8, 0.9, 0.99):
            mask = (crf_foreground(image, inside * p, crf) > keep) & inside
            if mask.sum() > box_area / 3:
                break
    return mask, used_fallback


def refine_official(
    image: np.ndarray,
    bbam: np.ndarray,
    box: np.ndarray,
    stride: float,
    crf: CRFParams,
    th_fg: float = 0.85,
    th_bg: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The authors' code: area-quantile saturation (0.85 and 0.2), blur with kernel = stride inside
    the box, CRF keeping Q > 0.9, and the filled-box CRF fallback for small boxes. Pixels inside the
    0.2 mask but outside the 0.85 mask are ignored."""
    h, w = bbam.shape
    inside = box_region(box, h, w)
    fg, fb1 = _official_mask(image, bbam, inside, th_fg, stride, crf)
    loose, fb2 = _official_mask(image, bbam, inside, th_bg, stride, crf)
    ignore = loose & ~fg
    return fg, ignore, {"crf_box_fallback": bool(fb1 or fb2)}


def instances_to_semantic(
    instances: list[InstanceLabel], height: int, width: int, contained_wins: bool = False
) -> np.ndarray:
    """Class map (uint8) from instance labels: a pixel claimed as foreground by two or more classes
    is ignored (255), as is a pixel that is only in some instance's ignore band.

    ``contained_wins`` (the authors' code): where two boxes overlap and one box lies wholly inside the
    other, the inner instance keeps the pixels instead of both being ignored.
    """
    n_cls = max([i.label for i in instances], default=0) + 1
    claims = np.zeros((n_cls, height, width), bool)
    for inst in instances:
        claims[inst.label] |= inst.fg
    n_claims = claims.sum(0)
    out = np.zeros((height, width), np.uint8)
    single = n_claims == 1
    out[single] = claims.argmax(0)[single].astype(np.uint8)
    out[n_claims >= 2] = IGNORE
    if contained_wins:
        for a in instances:
            for b in instances:
                if a is b or a.label == b.label:
                    continue
                inner = (
                    a.box[0] >= b.box[0]
                    and a.box[1] >= b.box[1]
                    and a.box[2] <= b.box[2]
                    and a.box[3] <= b.box[3]
                )
                if inner:
                    out[a.fg & (n_claims >= 2)] = a.label
    band = np.zeros((height, width), bool)
    for inst in instances:
        band |= inst.ignore
    out[band & (n_claims == 0)] = IGNORE
    return out


def compose_overwrite(
    instances: list[InstanceLabel], height: int, width: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Box2Seg's composition: boxes from large to small, each overwriting the class map with its
    ignore region (255) and then its foreground. Returns the class map and each instance's visible
    foreground after overwriting."""
    order = sorted(
        range(len(instances)), key=lambda i: -float(np.prod(instances[i].box[2:] - instances[i].box[:2]))
    )
    out = np.zeros((height, width), np.uint8)
    owner = np.full((height, width), -1, np.int64)
    for i in order:
        out[instances[i].ignore] = IGNORE
        owner[instances[i].ignore] = -1
        out[instances[i].fg] = instances[i].label
        owner[instances[i].fg] = i
    return out, [owner == i for i in range(len(instances))]
