"""Box + CRF: the dense CRF of BBAM's refinement on a uniform prior inside the box (not in the
papers; what BBAM has to beat to add anything over low-level cues)."""

from __future__ import annotations

import numpy as np

from bbam_lite.pseudo.crf import CRFParams, crf_foreground
from bbam_lite.pseudo.labels import InstanceLabel, box_region
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method, register

#: Prior inside the box for Box + CRF (the calibration prototype's value); outside the box it is 0.
BOX_CRF_PRIOR = 0.6


def box_prior(box: np.ndarray, height: int, width: int, prior: float = BOX_CRF_PRIOR) -> np.ndarray:
    """The uniform foreground prior inside ``box`` (0 outside) that Box + CRF refines."""
    return box_region(box, height, width) * np.float32(prior)


def box_crf_instances(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, crf: CRFParams, prior: float = BOX_CRF_PRIOR
) -> list[InstanceLabel]:
    """Foreground where the CRF's refined marginal of the box prior exceeds 0.5, inside the box."""
    h, w = image.shape[:2]
    out = []
    for b, c in zip(boxes, labels, strict=True):
        inside = box_region(b, h, w)
        q = crf_foreground(image, inside * np.float32(prior), crf)
        out.append(InstanceLabel(int(c), b.copy(), (q > 0.5) & inside, np.zeros((h, w), bool)))
    return out


@register
class BoxCRF(Method):
    name = "box_crf"
    memory_per_pixel = 235.0  # scripts/bench_memory.py, lite, 2026-12-04
    title = "Box + CRF"
    summary = "a dense CRF on a uniform prior inside the box (the CRF of BBAM's refinement)"
    colour = "tab:purple"
    order = 20

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        return box_crf_instances(item.image, item.boxes, item.labels, ctx.settings.crf_params(*item.shape))
