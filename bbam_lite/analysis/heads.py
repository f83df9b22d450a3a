"""What each head of the detector looks at (Fig. 4, Fig. 6 of the paper).

* Fig. 4: BBAM with the box head only (1_box = 1, 1_cls = 0), the cls head only, or both; the
  pseudo labels of each are compared (:data:`HEADS` are the switches, read by
  :func:`~bbam_lite.analysis.study.bbam_labels`).
* Fig. 6a/b: the relative position R of a pixel x in an object mask with centroid x_c and contour
  C: r1 = |x - x_c|, r2 = min_{c in C} |x - c|, theta the angle of x - x_c with the x axis, and
  R = r1 / (r1 + r2) (cos theta, sin theta). |R| = 0 at the centroid and 1 on the contour. The paper
  plots R for the pixels whose attribution exceeds 0.9: box head near the boundary, cls head inside.
  High pixels can lie outside the object (the box head needs the background at the object's edge):
  there we continue R with r1 / (r1 - r2), which equals r / rho on a disc, as inside.
* Fig. 6c: the loss of each head while only the other head is optimised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from bbam_lite.analysis.study import ObjectMap, StudyObject
from bbam_lite.attribution.bbam import BBAMConfig, explain

#: BBAMConfig switches of Fig. 4: which heads' losses the mask must preserve.
HEADS: dict[str, dict[str, bool]] = {
    "box head only": {"use_box": True, "use_cls": False},
    "cls head only": {"use_box": False, "use_cls": True},
    "both heads": {"use_box": True, "use_cls": True},
}


def contour(mask: np.ndarray) -> np.ndarray:
    """The mask's contour C: its pixels with a 4-neighbour outside the mask (or on the image border)."""
    mask = np.asarray(mask, bool)
    interior = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1), border_value=0)
    return mask & ~interior


#: |R| beyond which pixels are drawn (and counted) at this value: twice the way to the contour.
R_MAX = 2.0


def relative_position(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R of every pixel relative to ``mask`` (Fig. 6a): returns (R (H, W, 2) as (x, y), |R| (H, W)).

    Inside the mask, the paper's definition: |R| = r1 / (r1 + r2), 0 at the centroid and 1 on the
    contour. Outside it (the paper plots only high pixels, which can lie outside the object), the
    continuation |R| = r1 / (r1 - r2): 1 on the contour and growing outwards; for a disc of radius
    rho both give r / rho at distance r from the centre. Where r1 <= r2 outside the mask (possible
    only for shapes whose centroid lies outside them) |R| is NaN. Coordinates are pixel centres, y
    pointing down as in the image; the centroid is the mask's mean pixel position and r2 the distance
    to the nearest contour pixel. Everything is NaN for an empty mask.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    R = np.full((h, w, 2), np.nan, np.float64)
    norm = np.full((h, w), np.nan, np.float64)
    if not mask.any():
        return R, norm
    ys, xs = np.nonzero(mask)
    yc, xc = ys.mean(), xs.mean()
    r2 = ndimage.distance_transform_edt(~contour(mask))
    yy, xx = np.mgrid[:h, :w]
    dx, dy = xx - xc, yy - yc
    r1 = np.hypot(dx, dy)
    inside_den = r1 + r2
    outside_den = r1 - r2
    rel = np.where(
        mask,
        np.divide(r1, inside_den, out=np.zeros_like(r1), where=inside_den > 0),
        np.divide(r1, outside_den, out=np.full_like(r1, np.nan), where=outside_den > 0),
    )
    theta = np.arctan2(dy, dx)
    R[..., 0] = rel * np.cos(theta)
    R[..., 1] = rel * np.sin(theta)
    return R, rel


def high_pixel_positions(
    bbam: np.ndarray, gt: np.ndarray, box: np.ndarray, threshold: float = 0.9, relative: bool = False
) -> dict[str, Any]:
    """R of the pixels of the object's box with attribution above ``threshold``, and the counts.

    The box is the region a pseudo label is cut from; high pixels elsewhere in the image (context
    the detector also uses) are counted, not placed. ``relative`` compares ``threshold`` with the
    map divided by its maximum inside the box instead of the map itself (BBAM's values are not
    calibrated across settings: a short optimisation or a large lambda can leave no pixel above an
    absolute 0.9)."""
    from bbam_lite.pseudo.labels import box_region

    R, norm = relative_position(gt)
    region = box_region(box, *gt.shape)
    if relative:
        top = float(bbam[region].max()) if region.any() else 0.0
        bbam = bbam / top if top > 0 else bbam
    high = bbam > threshold
    placed = high & region & np.isfinite(norm)
    return {
        "R": R[placed],  # (N, 2)
        "norm": norm[placed],  # (N,)
        "all_norm": norm[region & np.isfinite(norm)],  # every box pixel: a map without preference
        "n_high": int(high.sum()),
        "n_high_in_box": int((high & region).sum()),
        "n_high_in_mask": int((high & gt).sum()),
        "n_mask": int(gt.sum()),
        "n_box": int(region.sum()),
    }


def _clip_norm(P: np.ndarray, r_max: float) -> np.ndarray:
    n = np.hypot(P[:, 0], P[:, 1])
    scale = np.where(n > r_max, r_max / np.maximum(n, 1e-12), 1.0)
    return P * scale[:, None]


def position_summary(
    maps: Sequence[ObjectMap],
    threshold: float = 0.9,
    relative: bool = False,
    max_points: int = 4000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fig. 6b for one head: R of the high pixels in the objects' boxes (subsampled to ``max_points``
    for plotting, |R| clipped at :data:`R_MAX`), a histogram of |R|, and the histogram of all box
    pixels as the reference a map without preference would give."""
    pts, norms, ref = [], [], []
    n_high = n_box_high = n_mask_high = n_mask = n_box = 0
    for m in maps:
        r = high_pixel_positions(m.bbam, m.obj.gt, m.obj.box, threshold, relative)
        pts.append(r["R"])
        norms.append(r["norm"])
        ref.append(r["all_norm"])
        n_high += r["n_high"]
        n_box_high += r["n_high_in_box"]
        n_mask_high += r["n_high_in_mask"]
        n_mask += r["n_mask"]
        n_box += r["n_box"]
    P = np.concatenate(pts) if pts else np.zeros((0, 2))
    N = np.minimum(np.concatenate(norms), R_MAX) if norms else np.zeros(0)
    A = np.minimum(np.concatenate(ref), R_MAX) if ref else np.zeros(0)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(P), size=min(len(P), max_points), replace=False) if len(P) else np.zeros(0, int)
    edges = np.linspace(0, R_MAX, 21)
    hist = np.histogram(N, edges)[0]
    ref_hist = np.histogram(A, edges)[0]

    def near(x: np.ndarray) -> float:
        return float(((x > 0.8) & (x <= 1.25)).mean()) if len(x) else float("nan")

    return {
        "threshold": threshold,
        "relative": relative,
        "points": np.round(_clip_norm(P[np.sort(keep)], R_MAX), 4).tolist(),
        "edges": edges.tolist(),
        "hist": (hist / max(hist.sum(), 1)).tolist(),
        "reference_hist": (ref_hist / max(ref_hist.sum(), 1)).tolist(),
        "median_norm": float(np.median(N)) if len(N) else float("nan"),
        "reference_median_norm": float(np.median(A)) if len(A) else float("nan"),
        "share_near_boundary": near(N),  # 0.8 < |R| <= 1.25: a band around the contour
        "reference_share_near_boundary": near(A),
        "share_inside_mask": float((N <= 1).mean()) if len(N) else float("nan"),
        "reference_share_inside_mask": float((A <= 1).mean()) if len(A) else float("nan"),
        "n_high": n_high,
        "share_high_outside_box": (n_high - n_box_high) / n_high if n_high else float("nan"),
        "share_of_box_high": n_box_high / n_box if n_box else float("nan"),
        "share_of_mask_high": n_mask_high / n_mask if n_mask else float("nan"),
        "objects": len(maps),
    }


def loss_curves(
    model: torch.nn.Module,
    objects: Sequence[StudyObject],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    device: str = "cpu",
    heads: dict[str, dict[str, bool]] = HEADS,
) -> dict[str, dict[str, Any]]:
    """Fig. 6c: per head setting, both heads' perturbation losses per iteration, averaged over objects.

    ``optimise`` computes both losses even for the head that is switched off, so the curve of the
    head left out shows what happens to its output while the other head's mask is optimised.
    """
    tasks = [o.task(device) for o in objects]
    out = {}
    for name, switches in heads.items():
        results = explain(model, tasks, replace(cfg, **switches), mean, record=("losses",))
        box = np.mean([r.history["box"] for r in results], 0)
        cls = np.mean([r.history["cls"] for r in results], 0)
        l1 = np.mean([np.asarray(r.history["l1"]) / r.mask.size for r in results], 0)
        out[name] = {
            "box": box.tolist(),
            "cls": cls.tolist(),
            "mask_mean": l1.tolist(),  # |M|_1 / cells: the mean mask value
            "objects": len(results),
            "fallbacks": sum(r.fallback is not None for r in results),
        }
    return out


def left_out_losses(curves: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Fig. 6c's claim in numbers: each head's final loss when its own term is optimised, when only
    the other head's term is, and when both are, and the ratio left-out / optimised (> 1: the mask
    that keeps the other head's output changes this head's output more). The heads' losses have
    different scales (4 deltas against C + 1 probabilities), so each is compared with itself."""
    own = {"box": "box head only", "cls": "cls head only"}
    other = {"box": "cls head only", "cls": "box head only"}
    rows = []
    for head in ("box", "cls"):
        opt, left = curves[own[head]][head][-1], curves[other[head]][head][-1]
        rows.append(
            {
                "head": head,
                "optimised": float(opt),
                "left_out": float(left),
                "both": float(curves["both heads"][head][-1]) if "both heads" in curves else float("nan"),
                "ratio": float(left / opt) if opt > 0 else float("inf"),
            }
        )
    return rows


def example_object(objects: Sequence[StudyObject]) -> StudyObject:
    """The largest object whose mask does not touch the image border (its contour is then all its
    own), or the largest object when every mask touches the border."""

    def inner(o: StudyObject) -> bool:
        g = o.gt
        return not (g[0].any() or g[-1].any() or g[:, 0].any() or g[:, -1].any())

    pool = [o for o in objects if inner(o)] or list(objects)
    return max(pool, key=lambda o: int(o.gt.sum()))
