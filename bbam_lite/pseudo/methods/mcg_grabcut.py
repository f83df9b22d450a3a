"""M∩G+ of Simple Does It (Khoreva et al., CVPR 2017): foreground where GrabCut and the box's best
mask proposal agree, ignored where they disagree.

For each box SDI takes the MCG proposal that best overlaps the box and the GrabCut+ segment of the
box; pixels both call object are foreground, pixels only one of them calls object are ignored (255)
by the segmentation loss, the rest is background. Here the proposals are MCG files where
``--mcg-dir`` gives them (one ``<image>.mat`` per image, as Pont-Tuset et al. publish them) and
the package's offline grouping proposals otherwise (:func:`bbam_lite.pseudo.refine.mask_proposals`).
SDI's GrabCut+ runs GrabCut on HED boundaries instead of colour differences; HED's trained model
cannot be obtained here, so this is GrabCut as Box2Seg's Algorithm 1 (:mod:`.grabcut`).
The BBAM paper's SDI rows (its Tables 1 and 3) were made with these labels.
"""

from __future__ import annotations

import numpy as np

from bbam_lite.pseudo.labels import InstanceLabel, box_region
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register
from bbam_lite.pseudo.methods.grabcut import grabcut_box
from bbam_lite.pseudo.refine import mask_proposals


def best_proposal(proposals: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The proposal (H, W) of highest IoU with the box's rectangle, or None if none overlaps it."""
    if len(proposals) == 0:
        return None
    region = box_region(box, *proposals.shape[1:]).ravel()
    flat = proposals.reshape(len(proposals), -1)
    inter = flat[:, region].sum(1).astype(np.float64)
    union = flat.sum(1) + region.sum() - inter
    iou = inter / np.maximum(union, 1)
    k = int(np.argmax(iou))
    return proposals[k] if iou[k] > 0 else None


def agreement(
    grabcut: np.ndarray, proposal: np.ndarray | None, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, ignore) inside the box: both say object / exactly one says object."""
    other = proposal if proposal is not None else np.zeros_like(grabcut)
    return grabcut & other & inside, (grabcut ^ other) & inside


@register
class MCGGrabCut(Method):
    name = "mcg_grabcut"
    memory_per_pixel = 1050.0  # scripts/bench_memory.py, lite, 2026-12-04 (grouping proposals)
    title = "M∩G+ (SDI)"
    summary = (
        "Simple Does It's M∩G+: GrabCut and the box's best mask proposal (MCG from --mcg-dir, else "
        "offline grouping) agree -> foreground, disagree -> ignored"
    )
    colour = "tab:cyan"
    order = 35
    settings = ("mcg_dir",)
    #: SDI as the BBAM paper reports it (VOC 2012 val): Table 1 (instance) and Table 3 (semantic)
    paper = {"mcg_grabcut": {"miou": 69.4, "ap50": 44.8, "ap75": 16.3, "abo": 49.1}}

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        h, w = item.shape
        proposals = mask_proposals(item.image, item.record.path, ctx.settings.mcg_dir)
        out = []
        for b, c in zip(item.boxes, item.labels, strict=True):
            fg_grabcut, ran = grabcut_box(item.image, b)
            proposal = best_proposal(proposals, b)
            fg, ignore = agreement(fg_grabcut, proposal, box_region(b, h, w))
            info = {"grabcut_ran": ran, "proposal": proposal is not None}
            out.append(InstanceLabel(int(c), b.copy(), fg, ignore, info=info))
        return out
