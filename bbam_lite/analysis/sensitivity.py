"""Parameter sensitivity: lambda (Table 6) and the thresholds theta_fg / theta_bg (Table 5).

The paper measures both on instance and semantic segmentation networks trained on the pseudo
labels; here we measure the pseudo labels themselves (mIoU and mean instance IoU against the exact
masks), the quantity the networks learn from. Table 5's seed growing (G) belongs to training and is
left to the segmentation chapter.

* lambda changes the optimisation: one BBAM run per value.
* The thresholds act after it: the dense CRF refines each object's map once, and every
  (theta_bg, theta_fg) pair thresholds the same refined map, so Table 5 costs one BBAM run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bbam_lite.analysis.study import analysis_images, bbam_labels, label_quality, quality_row, read_maps
from bbam_lite.pseudo.labels import InstanceLabel, threshold_map
from bbam_lite.pseudo.postprocess import PostProcess

#: Table 6's values of lambda (the paper's default 0.007).
LAMBDAS = (0.001, 0.003, 0.005, 0.007, 0.010, 0.020)
#: A short sweep for quick profiles: the two ends and the default.
LAMBDAS_SHORT = (0.001, 0.007, 0.020)


def study_lambdas(profile: str) -> tuple[float, ...]:
    """Table 6's values of lambda for a profile: the paper's six at ``full``, the two ends and the
    default otherwise (each value is a BBAM run)."""
    return LAMBDAS if profile == "full" else LAMBDAS_SHORT


#: Table 5's rows as (theta_bg, theta_fg); equal values leave no pixel ignored.
THRESHOLDS = ((0.2, 0.2), (0.5, 0.5), (0.8, 0.8), (0.3, 0.7), (0.2, 0.8))
#: The paper's numbers (VOC val, networks trained on the labels) to set beside ours.
PAPER_TABLE6 = {
    0.001: {"AP": 26.6, "AP50": 58.7, "AP75": 21.1, "mIoU": 67.9},
    0.003: {"AP": 28.1, "AP50": 59.9, "AP75": 22.8, "mIoU": 69.7},
    0.005: {"AP": 28.7, "AP50": 60.2, "AP75": 24.3, "mIoU": 70.8},
    0.007: {"AP": 29.6, "AP50": 61.9, "AP75": 25.8, "mIoU": 71.4},
    0.010: {"AP": 28.7, "AP50": 60.4, "AP75": 24.4, "mIoU": 70.7},
    0.020: {"AP": 28.3, "AP50": 59.6, "AP75": 23.7, "mIoU": 70.3},
}
#: Table 5 without seed growing, keyed (theta_bg, theta_fg).
PAPER_TABLE5 = {
    (0.2, 0.2): {"AP": 24.8, "AP50": 58.3, "AP75": 18.1},
    (0.5, 0.5): {"AP": 28.3, "AP50": 59.5, "AP75": 24.7},
    (0.8, 0.8): {"AP": 27.8, "AP50": 59.0, "AP75": 23.3},
    (0.3, 0.7): {"AP": 28.1, "AP50": 59.5, "AP75": 24.0},
    (0.2, 0.8): {"AP": 28.6, "AP50": 60.4, "AP75": 24.0},
}
#: Table 5's rows with seed growing (G), keyed (theta_bg, theta_fg).
PAPER_TABLE5_GROWING = {
    (0.3, 0.7): {"AP": 28.4, "AP50": 59.6, "AP75": 24.6},
    (0.2, 0.8): {"AP": 29.6, "AP50": 61.9, "AP75": 25.8},
}


def lambda_sweep(
    ws,
    lambdas: Sequence[float] = LAMBDAS,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
    preset: str | None = None,
) -> list[dict[str, Any]]:
    """Table 6: pseudo-label quality and the mean map value on and off the object for each lambda
    (BBAM ``preset``: the default's when None)."""
    rows = []
    ds = ws.data(split)
    n = analysis_images(ws) if n_images is None else n_images
    for lam in lambdas:
        folder, q = bbam_labels(ws, n_images, iterations, split, preset, lam=float(lam))
        maps = read_maps(folder, ds, n)
        inside = [float(m.bbam[m.obj.gt].mean()) for m in maps]
        outside = [float(m.bbam[~m.obj.gt].mean()) for m in maps]
        rows.append(
            quality_row(
                q,
                lam=float(lam),
                mean_map_on_object=float(np.mean(inside)) if inside else float("nan"),
                mean_map_off_object=float(np.mean(outside)) if outside else float("nan"),
            )
        )
    return rows


def threshold_sweep(
    folder: Path, dataset, settings, n_images: int | None, pairs: Sequence[tuple[float, float]] = THRESHOLDS
) -> list[dict[str, Any]]:
    """Table 5 from one BBAM labels folder: every (theta_bg, theta_fg) pair on the same CRF-refined maps.

    ``settings`` is the folder's :class:`~bbam_lite.pseudo.settings.PseudoLabelSettings` (paper
    preset, no proposal refinement): it gives the CRF parameters.
    """
    post = PostProcess.of(settings)
    if post.rule != "values" or post.refine:
        raise ValueError("threshold_sweep reproduces the paper preset without proposal refinement")
    maps = read_maps(folder, dataset, n_images)
    refined = [post.refined_map(m.obj.image, m.bbam, m.obj.box) for m in maps]
    records = {r.image_id: r for r in list(dataset)[: n_images if n_images is not None else None]}
    rows = []
    for bg, fg in pairs:
        per_image: dict[int, list[InstanceLabel]] = {}
        for m, r in zip(maps, refined, strict=True):
            f, ign = threshold_map(r, fg, bg)
            per_image.setdefault(m.obj.image_id, []).append(InstanceLabel(m.obj.label, m.obj.box, f, ign))
        q = label_quality(((records[i], insts) for i, insts in per_image.items()), dataset.class_names)
        rows.append({"theta_bg": bg, "theta_fg": fg, **q})
    return rows
